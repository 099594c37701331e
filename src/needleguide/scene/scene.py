"""Immutable scene snapshot and the injectate interface the imagers read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.scene.needle import Needle


@dataclass(frozen=True)
class SparseField:
    """A scalar field on a small local grid: ``values[i, j, k]`` at voxel (i, j, k),
    ``VoxelToPatient`` (4x4) mapping voxel indices to RAS mm. Units are the producer's
    (iodine: mg I/mL; fluid: volume fraction 0..1)."""

    values: np.ndarray
    VoxelToPatient: np.ndarray

    @property
    def spacing_mm(self) -> np.ndarray:
        return np.linalg.norm(self.VoxelToPatient[:3, :3], axis=0)

    def total(self) -> float:
        """Integral of the field over its volume (value × mL; 1 mL = 1000 mm³)."""
        voxel_ml = float(np.prod(self.spacing_mm)) / 1000.0
        return float(self.values.sum(dtype=np.float64) * voxel_ml)


@runtime_checkable
class InjectateSource(Protocol):
    """What the imagers need from the injectate model at time ``t_s`` (s)."""

    def iodine_mg_ml(self, t_s: float) -> SparseField | None:
        """Iodine concentration field (mg I/mL) or None if no contrast is present."""

    def fluid_fraction(self, t_s: float) -> SparseField | None:
        """Extravascular injectate volume fraction (0..1), for ultrasound; None if none."""


@dataclass(frozen=True)
class Scene:
    """Everything that determines a frame at time ``time_s``.

    poses: named 4x4 device transforms, e.g. ``ProbeToPatient``, ``DetectorToPatient``,
    ``SourceToPatient``. Snapshots are immutable; use the ``with_*`` methods.
    """

    patient: Patient
    needle: Needle | None = None
    injectate: InjectateSource | None = None
    poses: dict[str, np.ndarray] = field(default_factory=dict)
    time_s: float = 0.0

    def with_needle(self, needle: Needle | None) -> Scene:
        return dataclasses.replace(self, needle=needle)

    def with_time(self, time_s: float) -> Scene:
        return dataclasses.replace(self, time_s=float(time_s))

    def with_pose(self, name: str, transform: np.ndarray) -> Scene:
        poses = dict(self.poses)
        poses[name] = np.asarray(transform, dtype=float)
        return dataclasses.replace(self, poses=poses)

    def with_injectate(self, injectate: InjectateSource | None) -> Scene:
        return dataclasses.replace(self, injectate=injectate)
