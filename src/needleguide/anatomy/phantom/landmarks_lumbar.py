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
from needleguide.anatomy.phantom.painter import Stroke, _paint_one
from needleguide.anatomy.phantom.sdf import Union
from needleguide.anatomy.tissues import TissueTable


def _roi_affine(center, n: int, sp: float) -> np.ndarray:
    aff = np.diag([sp, sp, sp, 1.0])
    aff[:3, 3] = np.asarray(center, float) - (n - 1) / 2.0 * sp
    return aff


def refine(candidates: list[tuple[str, np.ndarray, str, str]], strokes: list[Stroke], body,
           tissues: TissueTable, half_mm: float = 4.5, sp: float = 0.5,
           depth_cap_mm: float = 2.0) -> dict[str, Landmark]:
    """Landmarks moved into their tissue. candidates: (name, RAS, tissue, description)."""
    parts = []  # (shape, stroke) in painting order, Unions split as the painter does
    for st in strokes:
        subs = st.shape.shapes if isinstance(st.shape, Union) and st.shape.smooth_mm == 0 \
            else [st.shape]
        parts.extend((sh, st) for sh in subs)
    bb = np.array([np.concatenate([np.asarray(b[0], float), np.asarray(b[1], float)])
                   for b in (sh.bbox() for sh, _ in parts)])
    lo_all, hi_all = bb[:, :3], bb[:, 3:]
    out: dict[str, Landmark] = {}
    for name, p, tissue, desc in candidates:
        p = np.asarray(p, float)
        pos = None
        for h in (half_mm, 2.0 * half_mm):  # widen once if the tissue is not near
            pos = _best_point(p, tissue, parts, lo_all, hi_all, body, tissues, h, sp,
                              depth_cap_mm)
            if pos is not None:
                break
        if pos is None:
            raise RuntimeError(f"landmark {name}: no {tissue} within {2 * half_mm} mm of "
                               f"{np.round(p, 1).tolist()}")
        out[name] = Landmark(name, pos, tissue, desc)
    return out


def _best_point(p, tissue, parts, lo_all, hi_all, body, tissues, half_mm, sp, depth_cap_mm):
    n = int(round(2 * half_mm / sp)) + 1
    lo_roi, hi_roi = p - half_mm - 1.0, p + half_mm + 1.0
    hit = np.nonzero(np.all(hi_all >= lo_roi, axis=1) & np.all(lo_all <= hi_roi, axis=1))[0]
    aff = _roi_affine(p, n, sp)
    lab = np.zeros((n, n, n), np.uint8)
    if body is not None:
        body.render_into(lab, aff)
    for idx in hit:
        sh, st = parts[idx]
        _paint_one(lab, aff, sh, st)
    mask = lab == tissues.label(tissue)
    if not mask.any():
        return None
    depth = np.minimum(ndimage.distance_transform_edt(mask, sampling=sp), depth_cap_mm)
    ijk = np.indices(mask.shape).reshape(3, -1).T * sp
    dist = np.linalg.norm(ijk - (n - 1) / 2.0 * sp, axis=1).reshape(mask.shape)
    score = np.where(mask, depth - 0.12 * dist, -np.inf)
    best = np.unravel_index(int(np.argmax(score)), mask.shape)
    return aff[:3, :3] @ np.array(best, float) + aff[:3, 3]
