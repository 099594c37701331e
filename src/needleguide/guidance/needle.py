"""Needle detection in one frame: shaft line, tip, angle and confidence, from pixels only.

Method (ultrasound in-plane and fluoroscopy alike; only the expected appearance differs):

1. Grey image, needle made bright: US echoes are bright; on fluoroscopy steel is bright
   in the 'white-bone' display and dark in 'black-bone' (read from ``settings['display']``;
   both polarities are tried when the frame does not say).
2. At half resolution, a Hessian ridge filter at the needle's width (σ from the pixel
   spacing) gives every pixel a bright-ridge strength and a line orientation; the K
   strongest ridge pixels vote in an orientation-gated weighted Hough transform.
3. The best line is refitted (weighted total least squares) to the ridge pixels near it,
   at full resolution.
4. Along the line, the on-line intensity minus the brighter of two side profiles gives a
   contrast profile (a step edge, such as a bone surface over its shadow, cancels); the
   noise is measured from the side profiles' difference. The needle is the longest run of
   significant contrast; its score is the matched-filter SNR over the run.
5. Tip: the deeper end in US (needles come from the skin); in fluoroscopy the end that is
   not at the field's border, else the end nearer the image centre (spinal targets,
   *assumption*). Sub-pixel tip: where the contrast falls to half its shaft level.
6. Confidence = logistic of the score; found when ≥ 0.5 (threshold set on needle-free
   frames of the tuning seeds for a false-positive rate ≤ 1%).

A ``prior`` (the previous detection, or the tracker's prediction) restricts the search to
a band around the prior line, which is faster and rejects distractors.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from needleguide.frame import Frame
from needleguide.guidance import needle_kernels as NK
from needleguide.guidance import needle_lines as NL
from needleguide.guidance.needle_measure import measure_shaft, quick_detection, shaft
from needleguide.guidance.needle_types import NOT_FOUND, NeedleDetection, NeedleParams

US_PARAMS = NeedleParams(snr_threshold=23.0, side_mm=2.0, min_angle_deg=14.0, n_peaks=10,
                         parallel_penalty=1.0, linear_tip=True, tip_offset_mm=0.6,
                         entry_depth_mm=5.0, entry_reach_mm=25.0, bend_penalty=0.3,
                         max_sagitta_mm=0.3, parallel_bg=True,
                         tip_visible_z=3.0, end_z=2.0, ext_long_mm=12.0)
FL_PARAMS = NeedleParams(snr_threshold=14.0, side_mm=1.2, min_length_mm=5.0, gap_mm=3.0,
                         n_peaks=20, peak_frac=0.0, parallel_penalty=2.0, axis_gate_deg=4.0,
                         scale=1, min_sigma_px=1.0, noise_norm=True, weight_cap_q=0.3,
                         k_candidates=6000, intensity_power=0.0, n_screen=6,
                         border_penalty=0.3, max_sagitta_mm=0.12)

_NO_MASK = np.ones((1, 1), bool)

__all__ = ["FL_PARAMS", "NOT_FOUND", "US_PARAMS", "NeedleDetection", "NeedleParams",
           "detect_needle"]

def _gray(frame: Frame) -> np.ndarray:
    p = frame.pixels
    if p.ndim == 3:
        p = cv2.cvtColor(np.ascontiguousarray(p[..., :3]), cv2.COLOR_RGB2GRAY)
    if p.dtype == np.uint8:  # (scratch arrays: no fresh pages per frame)
        return np.multiply(p, np.float32(1.0 / 255.0),
                           out=NK.scratch("gray", p.shape, np.float32))
    return np.ascontiguousarray(p, dtype=np.float32)


def _polarities(frame: Frame) -> tuple[bool, ...]:
    """Whether to invert the grey image (True: needle dark), per try."""
    if frame.modality == "us":
        return (False,)
    disp = str(frame.settings.get("display", ""))
    if disp == "black-bone":
        return (True,)
    if disp == "white-bone":
        return (False,)
    if frame.settings.get("dsa_role") == "subtracted":
        return (True,)
    return (False, True)


def _needle_width_mm(frame: Frame) -> float:
    """Expected apparent needle width (mm) in the image plane."""
    if frame.modality == "us":
        return float(frame.settings.get("axial_resolution_mm", 0.4))
    od = float(frame.settings.get("needle_od_mm", 0.8))
    sid, sod = frame.settings.get("sid_mm"), frame.settings.get("sod_mm")
    mag = float(sid) / float(sod) if sid and sod else 1.5
    return od * mag


def detect_needle(frame: Frame, prior: NeedleDetection | None = None,
                  params: NeedleParams | None = None) -> NeedleDetection:
    """Detect the needle in ``frame`` (US in-plane or fluoroscopy) without its truth."""
    prm = params or (US_PARAMS if frame.modality == "us" else FL_PARAMS)
    img = _gray(frame)
    best = NOT_FOUND
    for inv in _polarities(frame):
        g = np.subtract(1.0, img, out=NK.scratch("inverted", img.shape, np.float32)) \
            if inv else img
        d = _detect(frame, g, prior, prm, inv)
        if d.score > best.score:
            best = d
    return best


def _detect(frame: Frame, img: np.ndarray, prior: NeedleDetection | None, prm: NeedleParams,
            inverted: bool) -> NeedleDetection:
    h, w = img.shape
    sp = float(np.mean(frame.spacing_mm))
    sc = prm.scale
    small = img if sc == 1 else cv2.resize(
        img, (w // sc, h // sc), dst=NK.scratch("small", (h // sc, w // sc), np.float32),
        interpolation=cv2.INTER_AREA)
    sigma = float(np.clip(0.5 * _needle_width_mm(frame) / (sc * sp), prm.min_sigma_px, 3.0))
    mask = None
    if frame.modality == "us":
        # the scan sector (black outside), eroded: its border is not a needle
        mask = cv2.erode((small > np.float32(1.5 / 255.0)).astype(np.uint8),
                         np.ones((7, 7), np.uint8)).astype(bool)
    if prior is not None and prior.found and prior.shaft_px is not None:
        mask = _band(small.shape, prior, prm.prior_band_px / sc, sc) & \
            (mask if mask is not None else True)
    idx, ws, comp = _candidates(frame, small, sigma, prm, mask)
    if idx.size < 10:
        return NOT_FOUND
    ys, xs = np.divmod(idx, small.shape[1])
    ths = NL.normal_angle(*comp)
    rho_max = int(np.hypot(*small.shape)) + 1
    acc = NL.hough_gated(xs.astype(np.float64), ys.astype(np.float64), ws.astype(np.float64),
                         ths.astype(np.float64), rho_max, prm.gate_deg, NL.N_THETA)
    prior_dir = _prior_direction(prior)
    if frame.modality == "fluoro" and prm.axis_gate_deg > 0:
        # standard C-arm views square the end-plates: end-plates, spinous processes and
        # canal walls lie along the image axes (*assumption*: needles rarely do). A prior
        # along an axis (a planned needle seen side-on in AP) lifts the gate within
        # ``prior_gate_deg`` of its own direction: the band around it holds the search.
        g = int(round(prm.axis_gate_deg))
        q = NL.N_THETA // 2
        keep = acc.copy() if prior_dir is not None else None
        acc[:g + 1] = 0.0
        acc[NL.N_THETA - g:] = 0.0
        acc[q - g:q + g + 1] = 0.0
        if keep is not None:
            k = np.arange(NL.N_THETA)
            near = np.abs((k - _normal_bin(prior_dir) + q) % NL.N_THETA - q) \
                <= prm.prior_gate_deg
            acc[near] = keep[near]
    if frame.modality == "us" and prm.min_angle_deg > 0:
        # in-plane needles come in from the side: no lines within min_angle of horizontal
        g = int(round(prm.min_angle_deg))
        acc[NL.N_THETA // 2 - g:NL.N_THETA // 2 + g + 1] = 0.0
    g_full = cv2.GaussianBlur(img, (0, 0), 0.8, dst=NK.scratch("g_full", img.shape, np.float32))
    peaks = NL.hough_peaks(acc, prm.n_peaks, prm.peak_frac)
    o = 0.5 * (sc - 1)  # full-resolution pixel centres: full = sc·small + (sc - 1)/2
    ks = np.array([k for k, _ in peaks], np.int64)
    ang = ks * np.pi / NL.N_THETA  # line normals
    cos, sin = np.cos(ang), np.sin(ang)
    sel = range(len(peaks))
    if prm.n_screen < len(peaks):  # one batched quick SNR on the Hough lines: best go on
        rr = (np.array([ir for _, ir in peaks], np.int64) - rho_max) * sc
        cu = np.stack([rr * cos + o, rr * sin + o, -sin, cos], axis=1)  # point, direction
        q = NL.screen_cu(g_full, cu, max(prm.side_mm / sp, 2.5),
                         max(3, int(round(0.5 / sp))), prm.run_k,
                         int(round(prm.gap_mm / sp)))
        sel = np.argsort(-q)[:prm.n_screen]
    cand = []
    gate = float(np.radians(12.0))
    for i in sel:  # refit to the candidates near the line and along it
        m, c, cov = NK.near_fit(xs, ys, ws, ths, cos[i], sin[i],
                                float(peaks[i][1] - rho_max), np.float32(ang[i]), gate, sc, o)
        if m < 5:
            continue
        u = np.linalg.eigh(cov)[1][:, 1]
        if _gated(frame, u, prm, prior_dir):  # the refit may move a line into a gate
            cand.append((c, u))
    found, shafts = [], []
    for c, u in cand:
        sh = shaft(frame, g_full, c, u, sp, prm)
        if sh is not None and sh.snr > 0:
            found.append(quick_detection(sh))
            shafts.append(sh)
    if not found:
        return NOT_FOUND
    factor = np.ones(len(found))
    if prm.parallel_penalty > 0 and len(found) > 1:
        # anatomy repeats (end-plates, canal walls, fascia): a line with strong parallel
        # companions is less likely the needle
        ang = np.array([d.angle_deg for d in found])
        sc = np.array([d.score for d in found])
        mids = np.array([np.mean(d.shaft_px, axis=0) for d in found])
        da = np.abs((ang[None, :] - ang[:, None] + 90.0) % 180.0 - 90.0)
        a = np.radians(ang)
        nrm = np.stack([np.sin(a), np.cos(a)], axis=1)  # normals of the lines on screen
        strong = sc[None, :] > 0.5 * sc[:, None]
        for i in range(len(found)):
            sep = np.abs((mids - mids[i]) @ nrm[i])  # duplicates of this line lie on it
            m = int(np.sum((da[i] < 4.0) & strong[i] & (sep > 6.0)))
            factor[i] = 1.0 / (1.0 + prm.parallel_penalty * m)
    # the full measurement (tip) only for the best few lines
    order = np.argsort([-d.score * f for d, f in zip(found, factor, strict=True)])
    best = NOT_FOUND
    for i in order[:prm.n_full]:
        d = measure_shaft(frame, g_full, shafts[i], sp, prm, inverted)
        d = _rescore(d, d.score * factor[i], prm)
        if d.score > best.score:
            best = d
    return best


def _candidates(frame: Frame, small: np.ndarray, sigma: float, prm: NeedleParams,
                mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The ``k_candidates`` strongest ridge pixels (flat indices, inside ``mask``), their
    Hough vote weights and Hessian components (Ixx, Iyy, Ixy) at the ridge's scale."""
    s1 = np.float32(sigma * sigma)
    g1 = cv2.GaussianBlur(small, (0, 0), sigma, dst=NK.scratch("g1", small.shape, np.float32))
    two = frame.modality == "us"  # specular shafts look thicker than the axial resolution
    sg2 = 2.5 * sigma
    s2 = np.float32(sg2 * sg2)
    g2 = cv2.GaussianBlur(small, (0, 0), sg2, dst=NK.scratch("g2", small.shape, np.float32)) \
        if two else g1
    # fluoroscopy: ridge strength in units of the local noise (quantum noise varies)
    noise = NL.local_noise(small) if prm.noise_norm else g1
    m = mask if mask is not None else _NO_MASK
    idx, val = NK.ridge_positive(g1, s1, g2, s2, two, noise, prm.noise_norm, m,
                                 mask is not None, prm.k_candidates)
    # specular steel is the brightest thing on the line: weight votes by intensity²
    ws = val * small.ravel()[idx] ** prm.intensity_power
    if prm.weight_cap_q < 1.0 and ws.size:  # saturating votes: long faint beats short edge
        ws = np.minimum(ws, np.quantile(ws, prm.weight_cap_q))
    xx, yy, xy, _ = NK.hessian_at(g1, s1, idx)
    comp = [xx, yy, xy]
    if two:  # the components at the stronger scale
        xx2, yy2, xy2, r2 = NK.hessian_at(g2, s2, idx)
        big = r2 >= val
        comp = [np.where(big, y, x) for x, y in zip(comp, (xx2, yy2, xy2), strict=True)]
    return idx, ws, comp


def _gated(frame: Frame, u: np.ndarray, prm: NeedleParams,
           prior_dir: np.ndarray | None = None) -> bool:
    """Whether a line of direction ``u`` passes the modality's angle gates (the same as
    the Hough transform's: US not within ``min_angle_deg`` of the horizontal, fluoroscopy
    not within ``axis_gate_deg`` of the image axes unless within ``prior_gate_deg`` of
    the prior's direction ``prior_dir``)."""
    a = float(np.degrees(np.arctan2(abs(u[1]), abs(u[0]))))  # 0..90 from the horizontal
    if frame.modality == "us":
        return a >= prm.min_angle_deg
    if frame.modality == "fluoro" and prm.axis_gate_deg > 0:
        if prior_dir is not None and NL.angle_between_deg(u, prior_dir) <= prm.prior_gate_deg:
            return True
        return prm.axis_gate_deg <= a <= 90.0 - prm.axis_gate_deg
    return True


def _prior_direction(prior: NeedleDetection | None) -> np.ndarray | None:
    """Unit direction (col, row) of a prior's shaft; None without a prior or for a dot."""
    if prior is None or not prior.found or prior.shaft_px is None:
        return None
    (c0, r0), (c1, r1) = prior.shaft_px
    d = np.array([c1 - c0, r1 - r0], float)
    n = float(np.linalg.norm(d))
    return d / n if n > 1e-6 else None


def _normal_bin(u: np.ndarray) -> int:
    """Hough bin (1° steps) of the normal of a line of direction ``u`` (col, row)."""
    return int(round(float(np.degrees(np.arctan2(u[0], -u[1]))) % 180.0)) % NL.N_THETA


def _rescore(d: NeedleDetection, score: float, prm: NeedleParams) -> NeedleDetection:
    conf = float(1.0 / (1.0 + np.exp(-(score - prm.snr_threshold) / prm.snr_scale)))
    return dataclasses.replace(d, score=score, confidence=conf, found=conf >= 0.5)


def _band(shape, prior: NeedleDetection, half_px: float, sc: int = 2) -> np.ndarray:
    """Mask (at 1/``sc`` resolution) of the band around the prior's shaft line."""
    (c0, r0), (c1, r1) = prior.shaft_px
    m = np.zeros(shape, np.uint8)
    p0 = np.array([c0, r0]) / sc
    p1 = np.array([c1, r1]) / sc
    d = p1 - p0
    n = np.linalg.norm(d)
    if n > 1e-6:  # extend the band ahead of the tip and behind the entry
        p0 -= d / n * 80.0 / sc
        p1 += d / n * 80.0 / sc
    cv2.line(m, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 1,
             thickness=max(3, int(2 * half_px)))
    return m.astype(bool)
