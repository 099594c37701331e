"""Landmarks of the lumbar phantom and their refinement into their tissue.

Candidate positions come from the analytic geometry; each is then checked on a small
0.5 mm render of the model around it and moved (at most a few mm) to the point of its
tissue that lies deepest inside it (distance to the tissue's boundary, capped at 2 mm)
while staying closest to the nominal position. A landmark whose tissue is absent near its
candidate is an error of the model, reported loudly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from needleguide.anatomy.patient import Landmark
from needleguide.anatomy.phantom.painter import Stroke, paint
from needleguide.anatomy.tissues import TissueTable


def _roi_affine(center, n: int, sp: float) -> np.ndarray:
    aff = np.diag([sp, sp, sp, 1.0])
    aff[:3, 3] = np.asarray(center, float) - (n - 1) / 2.0 * sp
    return aff


def refine(candidates: list[tuple[str, np.ndarray, str, str]], strokes: list[Stroke], body,
           tissues: TissueTable, half_mm: float = 6.0, sp: float = 0.5,
           depth_cap_mm: float = 2.0) -> dict[str, Landmark]:
    """Landmarks moved into their tissue. candidates: (name, RAS, tissue, description)."""
    boxes = []
    for st in strokes:
        lo, hi = st.shape.bbox()
        boxes.append((np.asarray(lo), np.asarray(hi)))
    n = int(round(2 * half_mm / sp)) + 1
    out: dict[str, Landmark] = {}
    for name, p, tissue, desc in candidates:
        p = np.asarray(p, float)
        lo_roi, hi_roi = p - half_mm - 1.0, p + half_mm + 1.0
        sub = [st for st, (lo, hi) in zip(strokes, boxes, strict=True)
               if np.all(hi >= lo_roi) and np.all(lo <= hi_roi)]
        aff = _roi_affine(p, n, sp)
        lab = np.zeros((n, n, n), np.uint8)
        if body is not None:
            body.render_into(lab, aff)
        paint(lab, aff, sub)
        mask = lab == tissues.label(tissue)
        if not mask.any():
            raise RuntimeError(f"landmark {name}: no {tissue} within {half_mm} mm of "
                               f"{np.round(p, 1).tolist()}")
        depth = np.minimum(ndimage.distance_transform_edt(mask, sampling=sp), depth_cap_mm)
        ijk = np.indices(mask.shape).reshape(3, -1).T * sp
        dist = np.linalg.norm(ijk - (n - 1) / 2.0 * sp, axis=1).reshape(mask.shape)
        score = np.where(mask, depth - 0.25 * dist, -np.inf)
        best = np.unravel_index(int(np.argmax(score)), mask.shape)
        pos = aff[:3, :3] @ np.array(best, float) + aff[:3, 3]
        out[name] = Landmark(name, pos, tissue, desc)
    return out
