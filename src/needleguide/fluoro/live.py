"""Live-rate measurement of the fluoroscope (pose cached; needle, contrast and noise per
frame). Used by ``benchmarks/fluoro_vs_rtk.py`` and quoted in docs/fluoro.md."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.fluoro.carm import named_view
from needleguide.fluoro.imager import Fluoroscope
from needleguide.fluoro.sequences import plan_needle
from needleguide.fluoro.settings import FluoroSettings
from needleguide.scene.scene import Scene, SparseField


@dataclass(frozen=True)
class GrowingCloud:
    """An injectate stand-in for load tests: a Gaussian iodine cloud (mg I/mL) of
    ``peak_mg_ml`` centred at ``center_mm`` whose radius grows as ``radius_mm_s`` × t on a
    fixed 0.8 mm grid (64³ voxels). Implements the InjectateSource protocol."""

    center_mm: tuple[float, float, float]
    peak_mg_ml: float = 150.0
    radius_mm_s: float = 4.0
    spacing_mm: float = 0.8
    n: int = 64

    def iodine_mg_ml(self, t_s: float) -> SparseField | None:
        r = self.radius_mm_s * max(t_s, 0.0)
        if r <= 0.5:
            return None
        x = (np.arange(self.n) - (self.n - 1) / 2) * self.spacing_mm
        d2 = x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2
        vals = (self.peak_mg_ml * np.exp(-d2 / (2 * r * r))).astype(np.float32)
        aff = np.diag([self.spacing_mm] * 3 + [1.0])
        aff[:3, 3] = np.asarray(self.center_mm) - (self.n - 1) / 2 * self.spacing_mm
        return SparseField(vals, aff)

    def fluid_fraction(self, t_s: float) -> SparseField | None:
        return None


def benchmark_live(n_frames: int = 60, patient: Patient | None = None,
                   pixels: int = 512) -> float:
    """Frames per second of :meth:`Fluoroscope.frame` on the lumbar phantom, oblique view
    of L4–L5, needle advancing 0.5 mm and the contrast cloud growing every frame, noise on.
    Contrast fields are prepared before timing (the injectate model's own cost is not the
    imager's)."""
    if patient is None:
        from needleguide.anatomy.phantom import build_phantom

        patient = build_phantom("lumbar", spacing_mm=1.0)
    settings = FluoroSettings(geometry=FluoroSettings().geometry.model_copy(
        update={"pixels": pixels}))
    carm = named_view(patient, "oblique-right", "L4-L5", geometry_=settings.geometry)
    fl = Fluoroscope(patient, settings, seed=0, carm=carm)
    target = patient.landmark("L4-L5.foramen.right") if "L4-L5.foramen.right" in \
        patient.landmarks else np.asarray(carm.isocenter_mm)
    needle, target = plan_needle(patient, carm, target)
    cloud = GrowingCloud(tuple(target))
    period = 1.0 / settings.pulse_rate
    fields = [cloud.iodine_mg_ml(i * period) for i in range(n_frames)]

    class _Pre:
        def __init__(self, f):
            self.f = f

        def iodine_mg_ml(self, t_s):
            return self.f

        def fluid_fraction(self, t_s):
            return None

    base = Scene(patient)
    scenes = [base.with_needle(needle.advanced(0.5 * i)).with_injectate(_Pre(fields[i]))
              .with_time(i * period) for i in range(n_frames)]
    fl.frame(scenes[1])  # warm: pose cache, JIT
    t0 = time.perf_counter()
    for sc in scenes:
        fl.frame(sc)
    return n_frames / (time.perf_counter() - t0)
