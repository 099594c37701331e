"""Where the needle's echo ends, for the needle-from-motion analyser (:mod:`.needle_motion`).

The motion places the tip within 1–2 mm (the tissue pushed ahead of the tip moves with
it) and its line within a few degrees; the echo of the shaft, or of the bevel alone on a
steep shaft, ends at the tip. Along a line, the *step* is the largest drop of the echo
(mean over ``step_mm`` before minus after; the line's band ±``step_band_mm``, its max),
scored against the same step's σ on two parallel lines 1.5 mm either side (speckle and
interfaces). :func:`step_tip` looks along the motion's line; :func:`refined_step` also
rocks and slides the line around the motion's tip (``refine_deg`` × ``refine_mm``) and
keeps the strongest step (the motion's line is off by a few degrees where the shaft is too
steep to echo; a 1° error moves the line ~0.3 mm at 20 mm). :func:`needle_line` is the
needle's line through the tips so found; :func:`refined_detection` applies the search to a
detection. ``prm`` is a :class:`.needle_motion.MotionParams`; images are the last frames'
mean at full resolution (float32)."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numba import njit

from needleguide.frame import Frame
from needleguide.guidance.needle_types import NeedleDetection

SIDE_MM = 1.5  # the parallel lines that give the step's σ
SAMPLE_MM = 0.1


def step_scores(img: np.ndarray, p: np.ndarray, u: np.ndarray, t: np.ndarray, fmm: float,
                prm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The strongest step down along each of the lines ``p + t·u`` (``p``, ``u``: (L, 2)
    full-resolution px, unit directions; ``t``: (T,) px along them, ``SAMPLE_MM`` apart;
    ``fmm``: mm per full-resolution px): (the step, (L,); its σ on the line's two parallel
    lines, (L,); t of the step's boundary, (L,) px)."""
    bands = np.arange(-prm.step_band_mm, prm.step_band_mm + 1e-6, SAMPLE_MM)
    offs = (np.array([0.0, -SIDE_MM, SIDE_MM])[:, None] + bands[None, :]) / fmm  # (3, B)
    nrm = np.c_[-u[:, 1], u[:, 0]]
    L, (n3, nb), T = len(p), offs.shape, t.size
    mx = (p[:, 0, None, None, None] + t[None, None, None, :] * u[:, 0, None, None, None]
          + offs[None, :, :, None] * nrm[:, 0, None, None, None])
    my = (p[:, 1, None, None, None] + t[None, None, None, :] * u[:, 1, None, None, None]
          + offs[None, :, :, None] * nrm[:, 1, None, None, None])
    v = cv2.remap(img, mx.reshape(-1, T).astype(np.float32), my.reshape(-1, T).astype(np.float32),
                  cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    prof = v.reshape(L, n3, nb, T).max(axis=2).astype(np.float64)  # (L, 3, T)
    n = max(1, int(round(prm.step_mm / SAMPLE_MM)))
    cs = np.concatenate([np.zeros((L, n3, 1)), np.cumsum(prof, axis=2)], axis=2)
    m = (cs[..., n:] - cs[..., :-n]) / n  # mean of [i, i + n)
    st = m[..., :-n] - m[..., n:]  # before minus after, at the boundary i + n
    if st.shape[-1] == 0:
        return np.zeros(L), np.ones(L), np.zeros(L)
    sig = np.maximum(st[:, 1:].reshape(L, -1).std(axis=1), 1e-3)
    j = np.argmax(st[:, 0], axis=1)
    return st[np.arange(L), 0, j], sig, t[j + n]


def _span(back_mm: float, ahead_mm: float, fmm: float, prm) -> np.ndarray:
    """Samples along a line from ``back_mm`` before to ``ahead_mm`` beyond a point, with
    the step's half-width either side (full-resolution px)."""
    lo = -(back_mm + prm.step_mm) / fmm
    hi = (ahead_mm + prm.step_mm) / fmm
    return np.arange(lo, hi, SAMPLE_MM / fmm, dtype=np.float32)


def step_tip(img: np.ndarray, c: np.ndarray, u: np.ndarray, s_peak: float, px_mm: float,
             prm) -> float | None:
    """Where the shaft's echo ends near the moving point, along the motion's line: the
    strongest step within ``step_back_mm`` before to ``step_ahead_mm`` beyond the motion's
    peak, if ≥ ``step_k`` σ. ``c`` (working grid px), ``u`` (unit), ``s_peak`` (grid px
    along ``u`` from ``c``): the motion's tip; ``px_mm``: the grid's pixel. Returns the
    tip as s (grid px along ``u``, less ``step_bias_mm``) or None."""
    sc = prm.scale
    fmm = px_mm / sc
    p = (c + 0.5) * sc - 0.5 + u * (s_peak * sc)
    t = _span(prm.step_back_mm, prm.step_ahead_mm, fmm, prm)
    step, sig, tb = step_scores(img, p[None, :], np.asarray(u, float)[None, :], t, fmm, prm)
    if step[0] < prm.step_k * sig[0]:
        return None
    return s_peak + float(tb[0]) / sc + prm.step_bias_mm / px_mm


_FAN: dict = {}


def _fan(deg: float, deg_step: float, mm: float, mm_step: float) -> tuple[np.ndarray, np.ndarray]:
    """The rotations (cos, sin) and perpendicular offsets (mm) of the rocked lines."""
    key = (deg, deg_step, mm, mm_step)
    if key not in _FAN:
        a = np.radians(np.arange(-deg, deg + 1e-9, deg_step))
        o = np.arange(-mm, mm + 1e-9, mm_step)
        aa, oo = np.meshgrid(a, o, indexing="ij")
        _FAN[key] = (np.c_[np.cos(aa.ravel()), np.sin(aa.ravel())], oo.ravel())
    return _FAN[key]


def refined_step(img: np.ndarray, tip_px, u: np.ndarray, fmm: float, prm,
                 ahead_mm: float | None = None, fan: tuple[float, float] | None = None
                 ) -> tuple[float, tuple[float, float], np.ndarray] | None:
    """The echo's end near a tip placed by motion (``tip_px``: full-resolution (col, row);
    ``u``: the line's unit direction, deeper; ``fmm``: mm per pixel): of the lines rotated
    about the tip by ±``refine_deg`` (``refine_deg_step``) and slid ±``refine_mm``
    (``refine_mm_step``) across it (``fan``: other limits, deg and mm), the strongest step
    within ``refine_back_mm`` before to ``ahead_mm`` (default ``refine_ahead_mm``) beyond
    the tip, against the ``refine_sig_q`` quantile of the lines' σ (the σ of one line's
    parallel lines is too noisy to rank lines that all cross the same echo's end; the
    parallel lines of some lines lie on the shaft). (score in σ; the tip (col,
    row): the mean, weighted by score, of the step's positions less ``refine_bias_mm`` on
    the lines within ``refine_tie`` of the best (an echo as wide as the beam ends alike on
    several neighbouring lines); the best line's direction) when ≥ ``refine_k``, else
    None."""
    deg, mm = (prm.refine_deg, prm.refine_mm) if fan is None else fan
    rot, off = _fan(deg, prm.refine_deg_step, mm, prm.refine_mm_step)
    u = np.asarray(u, float)
    ul = np.c_[rot[:, 0] * u[0] - rot[:, 1] * u[1], rot[:, 1] * u[0] + rot[:, 0] * u[1]]
    nrm = np.c_[-ul[:, 1], ul[:, 0]]
    p = np.asarray(tip_px, float)[None, :] + nrm * (off / fmm)[:, None]
    ahead = prm.refine_ahead_mm if ahead_mm is None else ahead_mm
    t = _span(prm.refine_back_mm, ahead, fmm, prm)
    step, sig, tb = step_scores(img, p, ul, t, fmm, prm)
    score = step / float(np.quantile(sig, prm.refine_sig_q))
    best = float(score.max())
    if best < prm.refine_k:
        return None
    near = score >= (1.0 - prm.refine_tie) * best
    w = score[near]
    q = p[near] + ul[near] * (tb[near] + prm.refine_bias_mm / fmm)[:, None]
    q = (w[:, None] * q).sum(axis=0) / float(w.sum())
    k = int(np.argmax(score))
    return best, (float(q[0]), float(q[1])), ul[k]


def needle_line(tips, sp_mm: float, prm) -> tuple[np.ndarray, np.ndarray] | None:
    """The needle's line (a point, a unit direction pointing deeper; frame px) from the
    tips found at the echo's end since the needle was found (``tips``: (col, row, the
    direction of their shaft); the needle of a still probe stays on one line), once there
    are ``line_points`` // 10 of them: the median of their shafts' directions and the
    median offset across it; where the tips spread over ``line_span_mm`` along it (an
    advance), the line through them (total least squares without the tips more than
    ``line_tol_mm`` off the median line). ``sp_mm``: mm per pixel."""
    r = traced_line(tips, sp_mm, prm)
    return None if r is None else r[:2]


def traced_line(tips, sp_mm: float, prm) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """:func:`needle_line` and whether the tips trace it: they spread over
    ``line_span_mm``, ``path_ratio`` times longer than wide (a round cloud's line points
    anywhere), and the line through them lies within ``trace_tol_deg`` of their shafts'
    median direction (where the echo ended and which way it ran agree: two cues that the
    motion's path, ``needle_motion_path``, does not overrule; 0: never)."""
    if len(tips) < max(2, prm.line_points // 10):
        return None
    cx, cy, ux, uy, traced = _traced(np.asarray(tips, np.float64), sp_mm, prm.line_span_mm,
                                     prm.line_tol_mm, prm.path_ratio, prm.trace_tol_deg)
    return np.array([cx, cy]), np.array([ux, uy]), traced


@njit(cache=True, inline="always")
def _major_axis(sxx: float, sxy: float, syy: float) -> tuple[float, float, float, float]:
    """The eigenvalues (smaller, larger) of the symmetric 2 × 2 matrix [[sxx, sxy], [sxy,
    syy]] and the larger one's unit eigenvector (x, y)."""
    m, r = 0.5 * (sxx + syy), math.hypot(0.5 * (sxx - syy), sxy)
    hi = m + r
    if sxy == 0.0:
        vx, vy = (1.0, 0.0) if sxx >= syy else (0.0, 1.0)
    elif sxx >= syy:
        vx, vy = hi - syy, sxy
    else:
        vx, vy = sxy, hi - sxx
    n = math.hypot(vx, vy)
    return m - r, hi, vx / n, vy / n


@njit(cache=True, inline="always")
def _cov(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, float]:
    """Means and covariance (n − 1) of the points (``x``, ``y``): mx, my, sxx, sxy, syy."""
    n = x.size
    mx, my = x.mean(), y.mean()
    sxx = sxy = syy = 0.0
    for i in range(n):
        dx, dy = x[i] - mx, y[i] - my
        sxx += dx * dx
        sxy += dx * dy
        syy += dy * dy
    k = 1.0 / max(n - 1, 1)
    return mx, my, sxx * k, sxy * k, syy * k


@njit(cache=True)
def _traced(a: np.ndarray, sp_mm: float, span_mm: float, tol_mm: float, ratio: float,
            tol_deg: float) -> tuple[float, float, float, float, bool]:
    """:func:`traced_line` of the tips ``a`` ((n, 4): col, row, shaft direction x, y):
    the line's point, its unit direction pointing deeper, whether the tips trace it."""
    n = a.shape[0]
    th = np.empty(n)
    for i in range(n):
        th[i] = math.atan2(a[i, 3], a[i, 2]) % np.pi  # undirected: 0 … π
    half = 0.5 * np.pi
    th = th[0] + (th - th[0] + half) % np.pi - half  # unwrapped around the first
    t = np.median(th)
    ux, uy = math.cos(t), math.sin(t)
    x, y = a[:, 0].copy(), a[:, 1].copy()
    along, across = x * ux + y * uy, x * -uy + y * ux
    off = np.median(across)
    mid = np.median(along)
    cx, cy = -uy * off + ux * mid, ux * off + uy * mid
    traced = False
    if (along.max() - along.min()) * sp_mm >= span_mm:
        keep = np.abs(across - off) * sp_mm <= tol_mm
        if keep.sum() >= 3:
            cx, cy, sxx, sxy, syy = _cov(x[keep], y[keep])
            _, _, vx, vy = _major_axis(sxx, sxy, syy)
            _, _, axx, axy, ayy = _cov(x, y)
            e0, e1, _, _ = _major_axis(axx, axy, ayy)  # all the tips (the kept: a band)
            dot = min(1.0, abs(vx * ux + vy * uy))
            traced = tol_deg > 0 and e1 >= ratio * ratio * max(e0, 1e-12) and \
                math.degrees(math.acos(dot)) <= tol_deg
            ux, uy = vx, vy
    if uy < 0:
        ux, uy = -ux, -uy
    return cx, cy, ux, uy, traced


def shaft_direction(p0, p1, min_len: float = 1e-6) -> tuple[float, np.ndarray] | None:
    """Length (px) and unit vector from ``p0`` to ``p1`` ((col, row)); None when shorter
    than ``min_len``."""
    d = np.asarray(p1, float) - np.asarray(p0, float)
    n = float(np.hypot(d[0], d[1]))
    return None if n < min_len else (n, d / n)


def dark_ahead(img: np.ndarray, tip_px, u: np.ndarray, fmm: float, prm) -> bool:
    """The needle's line runs on into black beyond its tip (an acoustic shadow, or tissue
    too dark to show an echo or its motion): the mean of ``img`` (the last frame, 0 … 1)
    from 0.5 mm to 0.5 + ``shadow_ahead_mm`` beyond ``tip_px`` (full-resolution (col,
    row)) along ``u`` (unit, deeper), over a band ±``step_band_mm`` across, is below
    ``shadow_level``. An echo that ends there need not end at the tip: the needle
    may go on unseen. False with ``shadow_ahead_mm`` = 0 or no sample inside ``img``;
    ``fmm``: mm per pixel."""
    if prm.shadow_ahead_mm <= 0:
        return False
    u = np.asarray(u, float)
    t = np.arange(0.5, 0.5 + prm.shadow_ahead_mm + 1e-6, SAMPLE_MM) / fmm
    b = np.arange(-prm.step_band_mm, prm.step_band_mm + 1e-6, SAMPLE_MM) / fmm
    x = tip_px[0] + t[None, :] * u[0] - b[:, None] * u[1]
    y = tip_px[1] + t[None, :] * u[1] + b[:, None] * u[0]
    h, w = img.shape
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    if not inside.any():
        return False
    v = cv2.remap(img, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_REPLICATE)
    return float(v[inside].mean()) < prm.shadow_level


def shadowed(det: NeedleDetection, img: np.ndarray, fmm: float, prm) -> NeedleDetection:
    """``det`` as reported: where its line runs on into black beyond the tip
    (:func:`dark_ahead` on ``img``), not seen (``tip_visible`` false,
    ``extra['tip_in_shadow']``); the tip stays where it was found."""
    if not det.found or det.shaft_px is None or det.tip_px is None:
        return det
    r = shaft_direction(*det.shaft_px, 1e-9)
    if r is None or not dark_ahead(img, det.tip_px, r[1], fmm, prm):
        return det
    return NeedleDetection(**{**det.__dict__, "tip_visible": False,
                              "extra": {**det.extra, "tip_in_shadow": True}})


def tip_fields(frame: Frame, tip_px) -> dict:
    """``tip_px`` (col, row) with its image-plane mm and patient RAS mm."""
    c, r = float(tip_px[0]), float(tip_px[1])
    return {"tip_px": (c, r),
            "tip_image_mm": (c * float(frame.spacing_mm[1]), r * float(frame.spacing_mm[0])),
            "tip_patient_mm": tuple(float(v) for v in frame.pixel_to_patient(c, r))}


def moved_to(det: NeedleDetection, frame: Frame, tip_px, prox_px=None, extra=None,
             **fields) -> NeedleDetection:
    """``det`` with its tip at ``tip_px`` (frame px; :func:`tip_fields`), its shaft from
    ``prox_px`` (default: where it started) to there, ``extra`` added to its extra and
    any other ``fields`` replaced."""
    tip = (float(tip_px[0]), float(tip_px[1]))
    if prox_px is None and det.shaft_px is not None:
        prox_px = det.shaft_px[0]
    return NeedleDetection(**{**det.__dict__, **tip_fields(frame, tip),
                              "shaft_px": None if prox_px is None else (prox_px, tip),
                              "extra": {**det.extra, **(extra or {})}, **fields})


def speed_limited(det: NeedleDetection, last_tip_px, dt_s: float, frame: Frame,
                  max_mm_s: float) -> NeedleDetection:
    """``det`` with its tip moved at most ``max_mm_s`` × ``dt_s`` from ``last_tip_px``
    (frame px; a jiggle moves the needle ±2 mm, and a jiggled shaft's motion may end
    short of the tip where the tissue is dark); ``extra['rate_limited']`` when moved."""
    if last_tip_px is None:
        return det
    lim = max_mm_s * max(dt_s, 1e-3) / float(frame.spacing_mm[0])
    a, b = np.asarray(last_tip_px, float), np.asarray(det.tip_px, float)
    d = float(np.hypot(*(b - a)))
    if d <= lim:
        return det
    return moved_to(det, frame, a + (b - a) * (lim / d), extra={"rate_limited": True})


def smoothed(det: NeedleDetection, shown_px, weight: float, frame: Frame) -> NeedleDetection:
    """``det`` as shown: its tip moved ``weight`` of the way to ``shown_px``, the tip shown
    for the frame before (frame px; None: the needle was not found there), the shaft's
    end with it (each frame's tip is off by its own noise: the echo's end found in one
    frame and the motion's peak in the next; ``tip_visible`` and the rest as found);
    ``extra['tip_found_px']``: the tip found in this frame."""
    if shown_px is None or weight <= 0 or not det.found or det.tip_px is None:
        return det
    a, b = np.asarray(shown_px, float), np.asarray(det.tip_px, float)
    return moved_to(det, frame, b + weight * (a - b), extra={"tip_found_px": det.tip_px})


def refined_detection(det: NeedleDetection, img: np.ndarray, line, frame: Frame, prm
                      ) -> NeedleDetection:
    """``det`` with its tip moved to the echo's end found around it (``refined_step`` on
    ``img``, the last frames' mean): rocked about the needle's line (``line``: point and
    direction, frame px, from :func:`needle_line`; the fan ±``line_mm`` across) when there
    is one, else about ``det``'s shaft; a held tip looks ``held_ahead_mm`` ahead (the
    needle may have gone on where the tissue is too dark to show motion). A tip placed by
    motion becomes ``step``, a held tip stays ``held`` (``extra['refined']``: the step's
    score in σ). No step: the tip projected on the line (``extra['on_line']``), or ``det``."""
    if prm.refine_k <= 0 or det.shaft_px is None:
        return det
    p1 = np.asarray(det.tip_px, float)
    shaft = shaft_direction(det.shaft_px[0], p1)
    if shaft is None:
        return det
    trail, u = shaft
    if line is not None:
        lc, u = line
        p1 = lc + u * float((p1 - lc) @ u)
    held = det.extra.get("tip_from") == "held"
    r = refined_step(img, p1, u, float(frame.spacing_mm[0]), prm,
                     prm.held_ahead_mm if held else None,
                     None if line is None else (prm.refine_deg, prm.line_mm))
    extra = {"on_line": True}
    if r is not None:
        score, p1, u = r
        extra = {"tip_from": "held" if held else "step", "refined": score}
    elif line is None:
        return det
    tip = (float(p1[0]), float(p1[1]))
    prox = (tip[0] - u[0] * trail, tip[1] - u[1] * trail)
    return moved_to(det, frame, tip, prox, extra,
                    angle_deg=float(np.degrees(np.arctan2(-u[1], u[0])) % 180.0),
                    tip_visible=r is not None or det.tip_visible)


__all__ = ["dark_ahead", "needle_line", "refined_detection", "refined_step",
           "shadowed", "shaft_direction", "speed_limited", "step_scores", "step_tip",
           "tip_fields", "traced_line"]
