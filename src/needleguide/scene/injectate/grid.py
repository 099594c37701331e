"""Local grids on one global lattice (RAS-aligned, voxel centres at integer multiples of
the spacing), so that fields of several compartments paste into one SparseField."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.scene.scene import SparseField


@dataclass(frozen=True)
class LocalGrid:
    """Voxel (0,0,0) sits at ``lo * spacing_mm`` (RAS mm); ``shape`` voxels along x, y, z."""

    lo: tuple[int, int, int]
    shape: tuple[int, int, int]
    spacing_mm: float

    @classmethod
    def around(cls, center_mm, size_mm, spacing_mm: float) -> LocalGrid:
        """The lattice box of about ``size_mm`` (scalar or 3) centred near ``center_mm``."""
        size = np.broadcast_to(np.asarray(size_mm, float), (3,))
        n = np.maximum(3, np.round(size / spacing_mm).astype(int))
        lo = np.round(np.asarray(center_mm, float) / spacing_mm - (n - 1) / 2.0).astype(int)
        return cls(tuple(int(v) for v in lo), tuple(int(v) for v in n), float(spacing_mm))

    @property
    def VoxelToPatient(self) -> np.ndarray:
        a = np.diag([self.spacing_mm] * 3 + [1.0])
        a[:3, 3] = np.asarray(self.lo, float) * self.spacing_mm
        return a

    @property
    def voxel_mm3(self) -> float:
        return self.spacing_mm**3

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def sub(self, lo_ijk, hi_ijk) -> LocalGrid:
        """The box [lo, hi) (voxel indices of this grid) as a grid of its own."""
        lo = np.asarray(lo_ijk, int)
        return LocalGrid(tuple(int(v) for v in np.array(self.lo) + lo),
                         tuple(int(v) for v in np.asarray(hi_ijk, int) - lo), self.spacing_mm)

    def box_of(self, flat_index: np.ndarray, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) voxel box of the given voxels, padded and clipped to the grid."""
        ijk = np.stack(np.unravel_index(np.asarray(flat_index), self.shape), axis=1)
        lo = np.maximum(ijk.min(axis=0) - pad, 0)
        hi = np.minimum(ijk.max(axis=0) + pad + 1, np.array(self.shape))
        return lo, hi

    def labels(self, patient: Patient) -> np.ndarray:
        """The patient's labels on this grid (re-rendered from the analytic model when the
        patient has one, else nearest-neighbour resampled)."""
        n = np.array(self.shape)
        center = (np.array(self.lo) + (n - 1) / 2.0) * self.spacing_mm
        roi = patient.roi(center, n * self.spacing_mm, self.spacing_mm)
        if tuple(roi.shape) != self.shape:  # pragma: no cover - roi rounding guard
            raise RuntimeError(f"roi shape {roi.shape} != grid {self.shape}")
        return roi.labels

    def points_mm(self, flat_index: np.ndarray) -> np.ndarray:
        """RAS mm of voxels given by flat indices."""
        ijk = np.stack(np.unravel_index(np.asarray(flat_index), self.shape), axis=-1)
        return (ijk + np.array(self.lo)) * self.spacing_mm

    def flat_of(self, points_mm) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the voxels nearest to ``points_mm`` (N, 3) and an inside flag."""
        ijk = np.rint(np.asarray(points_mm, float) / self.spacing_mm - np.array(self.lo))
        ijk = ijk.astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(self.shape)), axis=-1)
        flat = np.ravel_multi_index(tuple(np.clip(ijk, 0, np.array(self.shape) - 1).T),
                                    self.shape)
        return flat, inside


def paste(parts: list[tuple[LocalGrid, np.ndarray]]) -> SparseField | None:
    """Sum fields living on local grids of one lattice into one SparseField on the box of
    their non-zero voxels (None when all are zero)."""
    boxes = []
    for grid, values in parts:
        nz = np.nonzero(values)
        if nz[0].size == 0:
            continue
        lo = np.array([c.min() for c in nz]) + np.array(grid.lo)
        hi = np.array([c.max() for c in nz]) + np.array(grid.lo) + 1
        boxes.append((grid, values, lo, hi))
    if not boxes:
        return None
    spacing = boxes[0][0].spacing_mm
    lo = np.min([b[2] for b in boxes], axis=0)
    hi = np.max([b[3] for b in boxes], axis=0)
    out = np.zeros(tuple(hi - lo), dtype=np.float32)
    for grid, values, blo, bhi in boxes:
        src = tuple(slice(a - g, b - g) for a, b, g in zip(blo, bhi, grid.lo, strict=True))
        dst = tuple(slice(a - o, b - o) for a, b, o in zip(blo, bhi, lo, strict=True))
        out[dst] += values[src].astype(np.float32)
    aff = np.diag([spacing] * 3 + [1.0])
    aff[:3, 3] = lo * spacing
    return SparseField(out, aff)
