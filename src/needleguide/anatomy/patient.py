"""The virtual patient: labelmap volume + RAS affine + tissue table + landmarks + centerlines.

``labels[i, j, k]`` is the tissue label of voxel (i, j, k); ``VoxelToPatient`` (4x4) maps
voxel indices to patient RAS mm (the NIfTI affine). A phantom patient also keeps its
``renderer`` so that a region of interest can be re-rendered from the analytic model at a
finer voxel size (the ultrasound imager needs 0.25–0.5 mm); an imported patient is
resampled (nearest neighbour) instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from needleguide import geometry
from needleguide.anatomy.tissues import TissueTable, default_tissue_table
from needleguide.errors import UserError

# renderer(shape, VoxelToPatient) -> uint8 labels on that grid
Renderer = Callable[[tuple[int, int, int], np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Centerline:
    """A vessel or nerve as a polyline with radii.

    points_mm: (N, 3) RAS mm, in flow order for vessels (proximal -> distal for arteries,
    distal -> central for veins); radii_mm: (N,); kind: 'artery' | 'vein' | 'nerve';
    velocity_mm_s: mean blood velocity along the point order (0 for nerves);
    label: tissue label of the lumen; parent: name of the centerline it branches from.
    """

    name: str
    kind: Literal["artery", "vein", "nerve"]
    points_mm: np.ndarray
    radii_mm: np.ndarray
    label: int
    velocity_mm_s: float = 0.0
    parent: str | None = None

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.diff(self.points_mm, axis=0), axis=1).sum())

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": int(self.label),
            "velocity_mm_s": float(self.velocity_mm_s),
            "parent": self.parent,
            "points_mm": np.round(self.points_mm, 3).tolist(),
            "radii_mm": np.round(self.radii_mm, 3).tolist(),
        }


@dataclass(frozen=True)
class Landmark:
    """A named target: position in RAS mm, the tissue it must lie in, and a description."""

    name: str
    position_mm: np.ndarray
    tissue: str
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ras_mm": np.round(np.asarray(self.position_mm, float), 3).tolist(),
            "tissue": self.tissue,
            "description": self.description,
        }


@dataclass(frozen=True)
class Vertebra:
    """One vertebra's pose: body centre (RAS mm), unit axes (superior = end-plate normal,
    anterior, right) and body dimensions (mm). Used for level labels and C-arm / probe views."""

    name: str  # e.g. "L4", "S1", "C6"
    center_mm: np.ndarray
    superior: np.ndarray
    anterior: np.ndarray
    body_height_mm: float
    body_width_mm: float
    body_depth_mm: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def right(self) -> np.ndarray:
        return np.cross(self.anterior, self.superior)

    def to_json(self) -> dict[str, Any]:
        return {
            "center_mm": np.round(self.center_mm, 3).tolist(),
            "superior": np.round(self.superior, 5).tolist(),
            "anterior": np.round(self.anterior, 5).tolist(),
            "body_height_mm": self.body_height_mm,
            "body_width_mm": self.body_width_mm,
            "body_depth_mm": self.body_depth_mm,
            **{k: v for k, v in self.extra.items()},
        }


@dataclass(frozen=True)
class Patient:
    """Labelmap + affine + tissue table + landmarks + centerlines + vertebrae (+ renderer)."""

    labels: np.ndarray
    VoxelToPatient: np.ndarray
    tissues: TissueTable = field(default_factory=default_tissue_table)
    landmarks: dict[str, Landmark] = field(default_factory=dict)
    centerlines: dict[str, Centerline] = field(default_factory=dict)
    vertebrae: dict[str, Vertebra] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    renderer: Renderer | None = field(default=None, repr=False, compare=False)

    # ---- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel size (mm) along i, j, k."""
        return np.linalg.norm(self.VoxelToPatient[:3, :3], axis=0)

    @property
    def PatientToVoxel(self) -> np.ndarray:
        return np.linalg.inv(self.VoxelToPatient)

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned RAS bounding box (min, max) of the voxel centres."""
        corners = np.array(
            [[i, j, k] for i in (0, self.shape[0] - 1) for j in (0, self.shape[1] - 1)
             for k in (0, self.shape[2] - 1)], dtype=float)
        c = geometry.apply(self.VoxelToPatient, corners)
        return c.min(axis=0), c.max(axis=0)

    def voxel_of(self, points_mm) -> np.ndarray:
        """Continuous voxel indices (..., 3) of RAS points (..., 3) in mm."""
        return geometry.apply(self.PatientToVoxel, np.asarray(points_mm, dtype=float))

    def label_at(self, points_mm) -> np.ndarray:
        """Tissue label at RAS points (..., 3) (nearest voxel; 0 = air outside the volume)."""
        ijk = np.rint(self.voxel_of(points_mm)).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(self.shape)), axis=-1)
        out = np.zeros(ijk.shape[:-1], dtype=self.labels.dtype)
        idx = ijk[inside]
        out[inside] = self.labels[idx[..., 0], idx[..., 1], idx[..., 2]]
        return out

    def tissue_name_at(self, point_mm) -> str:
        """Name of the tissue at one RAS point (mm)."""
        return self.tissues[int(self.label_at(np.asarray(point_mm)[None])[0])].name

    def walk_to_skin(self, start_mm, direction, max_mm: float = 300.0, step_mm: float = 0.5
                     ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """Walk from ``start_mm`` (RAS) along ``direction`` in ``step_mm`` steps until the
        first point outside the body (label 0). Returns (that point or None if none within
        ``max_mm``, the step distances in mm before it, their labels)."""
        t = np.asarray(start_mm, dtype=float)
        d = np.asarray(direction, dtype=float)
        d = d / np.linalg.norm(d)
        steps = np.arange(0.0, max_mm, step_mm)
        labels = self.label_at(t[None, :] + steps[:, None] * d[None, :])
        outside = np.flatnonzero(labels == 0)
        if outside.size == 0:
            return None, steps, labels
        k = int(outside[0])
        return t + steps[k] * d, steps[:k], labels[:k]

    def mask(self, *names: str) -> np.ndarray:
        """Boolean volume of the voxels whose tissue is one of ``names``."""
        ids = [self.tissues.label(n) for n in names]
        return np.isin(self.labels, ids)

    def landmark(self, name: str) -> np.ndarray:
        """RAS position (mm) of a named landmark; a clear error lists close names otherwise."""
        if name not in self.landmarks:
            import difflib

            near = difflib.get_close_matches(name, list(self.landmarks), n=6, cutoff=0.4)
            hint = f"; did you mean: {', '.join(near)}" if near else ""
            raise UserError(f"landmark: unknown name {name!r}{hint}")
        return np.asarray(self.landmarks[name].position_mm, dtype=float)

    # ---- regions of interest -------------------------------------------------------------
    def roi(self, center_mm, size_mm, spacing_mm: float) -> Patient:
        """A sub-volume centred at ``center_mm`` (RAS), ``size_mm`` (scalar or 3) wide,
        axis-aligned in RAS, at isotropic ``spacing_mm``. Re-rendered from the analytic
        model when the patient has one (smooth bone surfaces), else resampled nearest."""
        size = np.broadcast_to(np.asarray(size_mm, dtype=float), (3,))
        if not (0.05 <= spacing_mm <= 5.0):
            raise UserError(f"spacing_mm: {spacing_mm} outside [0.05, 5.0] mm")
        n = np.maximum(1, np.round(size / spacing_mm).astype(int))
        origin = np.asarray(center_mm, dtype=float) - (n - 1) / 2.0 * spacing_mm
        aff = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
        aff[:3, 3] = origin
        shape = (int(n[0]), int(n[1]), int(n[2]))
        if self.renderer is not None:
            labels = self.renderer(shape, aff)
        else:
            labels = resample_labels(self.labels, self.VoxelToPatient, shape, aff)
        return dataclasses.replace(self, labels=labels, VoxelToPatient=aff)


def resample_labels(
    labels: np.ndarray, src_affine: np.ndarray, shape: tuple[int, int, int], dst_affine: np.ndarray
) -> np.ndarray:
    """Nearest-neighbour resampling of a label volume onto a new grid (both affines
    voxel -> RAS mm). Outside the source grid the label is 0 (air)."""
    m = np.linalg.inv(src_affine) @ dst_affine
    return ndimage.affine_transform(
        labels, m[:3, :3], offset=m[:3, 3], output_shape=shape, order=0, mode="constant", cval=0
    ).astype(labels.dtype)
