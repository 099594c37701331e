"""The phantom model: parameters in, an analytic (SDF) anatomy out, renderable at any grid.

Region builders (``lumbar.build``, ``cervical.build``) return a :class:`PhantomModel`:
ordered strokes plus landmarks, centerlines and vertebrae. ``to_patient`` renders it on a
whole-region grid (default 1 mm); the Patient keeps ``renderer`` so that
``Patient.roi(center, size, 0.25)`` re-renders the same anatomy at a finer voxel size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from needleguide.anatomy.patient import Centerline, Landmark, Patient, Vertebra
from needleguide.anatomy.phantom.painter import Stroke, render
from needleguide.anatomy.tissues import TissueTable, default_tissue_table

Region = Literal["lumbar", "cervical", "spine"]


class PhantomParams(BaseModel):
    """Validated phantom parameters (the CLI and API boundary).

    region: 'lumbar' (T11–coccyx, pelvis, both hips), 'cervical' (occiput–T2) or 'spine'
    (the whole spine, C1–coccyx, with the chest: anatomy/phantom/wholespine.py);
    bmi: body-mass index, kg/m² (15–60); degeneration: 0 none … 3 severe (disc height
    loss, facet hypertrophy, osteophytes); seed: random variation; spacing_mm: voxel size
    of the whole-region volume (0.25–3 mm).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: Region = "lumbar"
    bmi: float = Field(24.0, ge=15.0, le=60.0)
    degeneration: int = Field(0, ge=0, le=3)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    spacing_mm: float = Field(1.0, ge=0.25, le=3.0)


@dataclass
class PhantomModel:
    """Analytic anatomy: strokes painted in order on any grid, plus named geometry."""

    params: PhantomParams
    strokes: list[Stroke]
    bounds_mm: tuple[np.ndarray, np.ndarray]  # RAS min, max of the region volume
    landmarks: dict[str, Landmark] = field(default_factory=dict)
    centerlines: dict[str, Centerline] = field(default_factory=dict)
    vertebrae: dict[str, Vertebra] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    tissues: TissueTable = field(default_factory=default_tissue_table)

    def render(self, shape: tuple[int, int, int], VoxelToPatient: np.ndarray) -> np.ndarray:
        """Labels (uint8) of this anatomy on the grid ``shape`` with affine ``VoxelToPatient``."""
        return render(self.strokes, shape, VoxelToPatient)

    def grid(self, spacing_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
        """Shape and affine of the whole-region grid at isotropic ``spacing_mm``."""
        lo, hi = (np.asarray(b, float) for b in self.bounds_mm)
        n = np.ceil((hi - lo) / spacing_mm).astype(int) + 1
        aff = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
        aff[:3, 3] = lo
        return (int(n[0]), int(n[1]), int(n[2])), aff

    def to_patient(self, spacing_mm: float | None = None) -> Patient:
        """Render the whole region at ``spacing_mm`` (default: the params' spacing)."""
        sp = self.params.spacing_mm if spacing_mm is None else spacing_mm
        shape, aff = self.grid(sp)
        labels = self.render(shape, aff)
        meta = {**self.params.model_dump(), **self.meta, "source": "phantom"}
        return Patient(labels=labels, VoxelToPatient=aff, tissues=self.tissues,
                       landmarks=dict(self.landmarks), centerlines=dict(self.centerlines),
                       vertebrae=dict(self.vertebrae), meta=meta, renderer=self.render)
