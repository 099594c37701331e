"""Ground truth of a simulated fluoroscopy frame: the needle's projection and the
vertebrae in view (never read by the guidance analysers)."""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.fluoro.carm import CArm
from needleguide.fluoro.field import field_mask
from needleguide.frame import FrameTruth
from needleguide.scene.scene import Scene


def vertebrae_in_view(carm: CArm, patient: Patient) -> dict[str, tuple[float, float]]:
    """Each vertebra whose body centre projects inside the collimated field (and, for a
    CT, inside its scanned range):
    name → (col, row) in pixels, cranio-caudal order as the patient lists them."""
    if not patient.vertebrae:
        return {}
    names = list(patient.vertebrae)
    px = carm.project(np.array([patient.vertebrae[k].center_mm for k in names]))
    mask = field_mask(carm, patient)
    n = carm.geometry.pixels
    out = {}
    for name, (c, r) in zip(names, px, strict=True):
        ci, ri = int(round(c)), int(round(r))
        if 0 <= ci < n and 0 <= ri < n and mask[ri, ci]:
            out[name] = (round(float(c), 2), round(float(r), 2))
    return out


def needle_truth(carm: CArm, scene: Scene) -> FrameTruth:
    """Projected needle tip and visible shaft (skin entry → tip) of the scene, and the
    vertebrae in view."""
    nd = scene.needle
    vert = vertebrae_in_view(carm, scene.patient)
    if nd is None:
        return FrameTruth(vertebrae_px=vert)
    n = carm.geometry.pixels
    tip_px = carm.project(nd.tip)
    entry_px = carm.project(nd.hub_mm)
    inside = bool(np.all((tip_px >= -0.5) & (tip_px <= n - 0.5)))
    return FrameTruth(tip_px=(float(tip_px[0]), float(tip_px[1])),
                      tip_mm=tuple(float(x) for x in nd.tip),
                      shaft_px=((float(entry_px[0]), float(entry_px[1])),
                                (float(tip_px[0]), float(tip_px[1]))),
                      needle_visible=inside, vertebrae_px=vert)
