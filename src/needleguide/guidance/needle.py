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
from needleguide.guidance import needle_lines as NL
from needleguide.guidance.needle_measure import measure_line
from needleguide.guidance.needle_types import NOT_FOUND, NeedleDetection, NeedleParams

US_PARAMS = NeedleParams(snr_threshold=23.0, side_mm=2.0, min_angle_deg=14.0, n_peaks=10,
                         parallel_penalty=1.0, linear_tip=True, tip_offset_mm=0.6,
                         entry_depth_mm=5.0, entry_reach_mm=25.0, bend_penalty=0.3,
                         max_sagitta_mm=0.3)
FL_PARAMS = NeedleParams(snr_threshold=14.0, side_mm=1.2, min_length_mm=5.0, gap_mm=3.0,
                         n_peaks=20, peak_frac=0.0, parallel_penalty=2.0, axis_gate_deg=4.0,
                         scale=1, min_sigma_px=1.0, noise_norm=True, weight_cap_q=0.3,
                         k_candidates=6000, intensity_power=0.0, n_screen=6,
                         border_penalty=0.3, max_sagitta_mm=0.12)

__all__ = ["FL_PARAMS", "NOT_FOUND", "US_PARAMS", "NeedleDetection", "NeedleParams",
           "detect_needle"]

def _gray(frame: Frame) -> np.ndarray:
    p = frame.pixels
    if p.ndim == 3:
        p = cv2.cvtColor(np.ascontiguousarray(p[..., :3]), cv2.COLOR_RGB2GRAY)
    if p.dtype == np.uint8:
        return p.astype(np.float32) * np.float32(1.0 / 255.0)
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
        d = _detect(frame, 1.0 - img if inv else img, prior, prm, inv)
        if d.score > best.score:
            best = d
    return best


def _detect(frame: Frame, img: np.ndarray, prior: NeedleDetection | None, prm: NeedleParams,
            inverted: bool) -> NeedleDetection:
    h, w = img.shape
    sp = float(np.mean(frame.spacing_mm))
    sc = prm.scale
    small = img if sc == 1 else cv2.resize(img, (w // sc, h // sc), interpolation=cv2.INTER_AREA)
    sigma = float(np.clip(0.5 * _needle_width_mm(frame) / (sc * sp), prm.min_sigma_px, 3.0))
    r, der = NL.hessian_ridge(small, sigma)
    if prm.noise_norm:  # ridge strength in units of the local noise (quantum noise varies)
        r = r / NL.local_noise(small)
    r2 = der2 = None
    if frame.modality == "us":  # specular shafts look thicker than the axial resolution
        r2, der2 = NL.hessian_ridge(small, 2.5 * sigma)
        r = np.maximum(r, r2)
    mask = None
    if frame.modality == "us":
        # the scan sector (black outside), eroded: its border is not a needle
        mask = cv2.erode((small > np.float32(1.5 / 255.0)).astype(np.uint8),
                         np.ones((7, 7), np.uint8)).astype(bool)
    if prior is not None and prior.found and prior.shaft_px is not None:
        mask = _band(small.shape, prior, prm.prior_band_px / sc, sc) & \
            (mask if mask is not None else True)
    idx = NL.top_candidates(r, mask, prm.k_candidates)
    if idx.size < 10:
        return NOT_FOUND
    ys, xs = np.divmod(idx, small.shape[1])
    # specular steel is the brightest thing on the line: weight votes by intensity²
    ws = r.ravel()[idx] * small.ravel()[idx] ** prm.intensity_power
    if prm.weight_cap_q < 1.0:  # saturating votes: a long faint line beats a short edge
        ws = np.minimum(ws, np.quantile(ws, prm.weight_cap_q))
    comp = [x.ravel()[idx] for x in der]
    if r2 is not None:
        big = r2.ravel()[idx] >= r.ravel()[idx]
        comp = [np.where(big, y.ravel()[idx], x) for x, y in zip(comp, der2, strict=True)]
    ths = NL.normal_angle(*comp)
    rho_max = int(np.hypot(*small.shape)) + 1
    acc = NL.hough_gated(xs.astype(np.float64), ys.astype(np.float64), ws.astype(np.float64),
                         ths.astype(np.float64), rho_max, prm.gate_deg, NL.N_THETA)
    if frame.modality == "fluoro" and prm.axis_gate_deg > 0:
        # standard C-arm views square the end-plates: end-plates, spinous processes and
        # canal walls lie along the image axes (*assumption*: needles rarely do)
        g = int(round(prm.axis_gate_deg))
        q = NL.N_THETA // 2
        acc[:g + 1] = 0.0
        acc[NL.N_THETA - g:] = 0.0
        acc[q - g:q + g + 1] = 0.0
    if frame.modality == "us" and prm.min_angle_deg > 0:
        # in-plane needles come in from the side: no lines within min_angle of horizontal
        g = int(round(prm.min_angle_deg))
        acc[NL.N_THETA // 2 - g:NL.N_THETA // 2 + g + 1] = 0.0
    g_full = cv2.GaussianBlur(img, (0, 0), 0.8)
    peaks = NL.hough_peaks(acc, prm.n_peaks, prm.peak_frac)
    o = 0.5 * (sc - 1)  # full-resolution pixel centres: full = sc·small + (sc - 1)/2
    if prm.n_screen < len(peaks):  # one batched quick SNR on the Hough lines: best go on
        hl = []
        for k, ir in peaks:
            a = k * np.pi / NL.N_THETA
            nrm = np.array([np.cos(a), np.sin(a)])
            hl.append(((ir - rho_max) * sc * nrm + o, np.array([-nrm[1], nrm[0]])))
        q = NL.screen_lines(g_full, hl, max(prm.side_mm / sp, 2.5),
                            max(3, int(round(0.5 / sp))), prm.run_k,
                            int(round(prm.gap_mm / sp)))
        peaks = [peaks[i] for i in np.argsort(-q)[:prm.n_screen]]
    cand = []
    for k, ir in peaks:
        a = k * np.pi / NL.N_THETA
        rho = ir - rho_max
        near = np.abs(xs * np.cos(a) + ys * np.sin(a) - rho) <= 1.5
        dth = np.abs(((ths - a) + np.pi / 2) % np.pi - np.pi / 2)
        near &= dth <= np.radians(12.0)
        if near.sum() < 5:
            continue
        c_u = NL.fit_line(sc * xs[near] + o, sc * ys[near] + o, ws[near])
        if _gated(frame, c_u[1], prm):  # the refit may move a line into a gate
            cand.append(c_u)
    found, lines = [], []
    for c, u in cand:
        d = measure_line(frame, g_full, c, u, sp, prm, inverted, quick=True)
        if d.score > 0:
            found.append(d)
            lines.append((c, u))
    if not found:
        return NOT_FOUND
    factor = np.ones(len(found))
    if prm.parallel_penalty > 0 and len(found) > 1:
        # anatomy repeats (end-plates, canal walls, fascia): a line with strong parallel
        # companions is less likely the needle
        ang = np.array([d.angle_deg for d in found])
        sc = np.array([d.score for d in found])
        mids = np.array([np.mean(d.shaft_px, axis=0) for d in found])
        for i in range(len(found)):
            da = np.abs((ang - ang[i] + 90.0) % 180.0 - 90.0)
            a = np.radians(ang[i])
            nrm = np.array([np.sin(a), np.cos(a)])  # normal of the line on screen
            sep = np.abs((mids - mids[i]) @ nrm)  # duplicates of this line lie on it
            m = int(np.sum((da < 4.0) & (sc > 0.5 * sc[i]) & (sep > 6.0)))
            factor[i] = 1.0 / (1.0 + prm.parallel_penalty * m)
    # the full measurement (tip) only for the best few lines
    order = np.argsort([-d.score * f for d, f in zip(found, factor, strict=True)])
    best = NOT_FOUND
    for i in order[:prm.n_full]:
        d = measure_line(frame, g_full, *lines[i], sp, prm, inverted)
        d = _rescore(d, d.score * factor[i], prm)
        if d.score > best.score:
            best = d
    return best


def _gated(frame: Frame, u: np.ndarray, prm: NeedleParams) -> bool:
    """Whether a line of direction ``u`` passes the modality's angle gates (the same as
    the Hough transform's: US not within ``min_angle_deg`` of the horizontal, fluoroscopy
    not within ``axis_gate_deg`` of the image axes)."""
    a = float(np.degrees(np.arctan2(abs(u[1]), abs(u[0]))))  # 0..90 from the horizontal
    if frame.modality == "us":
        return a >= prm.min_angle_deg
    if frame.modality == "fluoro" and prm.axis_gate_deg > 0:
        return prm.axis_gate_deg <= a <= 90.0 - prm.axis_gate_deg
    return True


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
