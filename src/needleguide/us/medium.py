"""The medium the B-mode imager samples: a label slab aligned with the probe plane
(0.25–0.4 mm voxels, with margins), rendered from the patient and kept by the imager while
the image plane stays inside it (``USImager.medium_for``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from needleguide.anatomy.patient import Patient, resample_labels
from needleguide.us import kernels as K
from needleguide.us.label_field import NO_MIX, mixed_blocks
from needleguide.us.probe import USSettings, image_extent_mm


@dataclass
class Medium:
    """A label volume around the probe plane with its ``PatientToVoxel`` (3×4)."""

    labels: np.ndarray
    VoxelToPatient: np.ndarray
    M: np.ndarray = field(init=False)
    _mixed: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.M = np.ascontiguousarray(np.linalg.inv(self.VoxelToPatient)[:3, :])

    @property
    def voxel_mm(self) -> float:
        """The slab's (isotropic) voxel size (mm)."""
        return float(np.linalg.norm(self.VoxelToPatient[:3, 0]))

    def lookup(self, subvoxel: bool) -> np.ndarray:
        """The ``mixed`` argument of ``label_field.label_at`` for this slab: ``NO_MIX``
        (nearest voxel) or, with ``subvoxel``, its blocks holding more than one label
        (sub-voxel boundaries; computed once)."""
        if not subvoxel:
            return NO_MIX
        if self._mixed is None:
            self._mixed = mixed_blocks(self.labels)
        return self._mixed

    def contains(self, pts_patient: np.ndarray, margin_vox: float = 1.0) -> bool:
        ijk = pts_patient @ self.M[:, :3].T + self.M[:, 3]
        hi = np.array(self.labels.shape) - 1 - margin_vox
        return bool(np.all(ijk >= margin_vox) and np.all(ijk <= hi))


def build_medium(patient: Patient, ProbeToPatient: np.ndarray, s: USSettings,
                 margin_mm: float = 6.0, elev_half_mm: float = 3.0) -> Medium:
    """Render (or resample) a label slab aligned with the probe plane, with margins."""
    sp = float(np.clip(C_LAMBDA(s) / 1.0, 0.25, 0.4))
    x0, x1, y0, y1 = image_extent_mm(s)
    lo = np.array([x0 - margin_mm, y0 - margin_mm, -elev_half_mm])
    hi = np.array([x1 + margin_mm, y1 + margin_mm, elev_half_mm])
    n = np.ceil((hi - lo) / sp).astype(int) + 1
    VoxelToProbe = np.diag([sp, sp, sp, 1.0])
    VoxelToProbe[:3, 3] = lo
    aff = np.asarray(ProbeToPatient, float) @ VoxelToProbe
    shape = (int(n[0]), int(n[1]), int(n[2]))
    if patient.renderer is not None:
        labels = patient.renderer(shape, aff)
    else:
        labels = resample_labels(patient.labels, patient.VoxelToPatient, shape, aff)
    return Medium(np.ascontiguousarray(labels, dtype=np.uint8), aff)


def flags_lut(patient: Patient) -> np.ndarray:
    """Per-label flags: bone, air, vessel, fluid (see kernels.FLAG_*)."""
    out = np.zeros(256, np.int64)
    for t in patient.tissues:
        f = 0
        if t.group in ("bone", "metal"):
            f |= K.FLAG_BONE
        if t.group == "air":
            f |= K.FLAG_AIR
        if t.group == "vessel":
            f |= K.FLAG_VESSEL
        if t.group == "fluid":
            f |= K.FLAG_FLUID
        out[t.label] = f
    return out


def C_LAMBDA(s: USSettings) -> float:
    return 1.540 / s.f_mhz


__all__ = ["C_LAMBDA", "Medium", "build_medium", "flags_lut"]
