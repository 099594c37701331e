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
from dataclasses import dataclass, field

import cv2
import numpy as np

from needleguide.frame import Frame
from needleguide.guidance import needle_lines as NL


@dataclass(frozen=True)
class NeedleParams:
    """Tunable parameters (set on the tuning seeds; see docs/guidance_needle.md).

    k_candidates: ridge pixels voting in the Hough transform; gate_deg: orientation gate;
    snr_threshold: score at confidence 0.5; snr_scale: logistic width; min_length_mm:
    shortest accepted shaft; gap_mm: largest gap inside a shaft run; side_mm: distance of
    the side profiles from the line; run_k: contrast (× noise σ) for a sample to support
    the shaft; prior_band_px: half width of the search band around a prior line."""

    k_candidates: int = 1500
    gate_deg: int = 4
    snr_threshold: float = 12.0
    snr_scale: float = 2.0
    min_length_mm: float = 3.0
    gap_mm: float = 2.0
    side_mm: float = 1.2
    run_k: float = 1.5
    prior_band_px: float = 25.0
    n_peaks: int = 6
    min_angle_deg: float = 12.0
    weak_k: float = 1.5
    parallel_penalty: float = 0.0
    shadow_mm: float = 4.0
    shadow_ratio: float = 0.6
    free_end_mm: float = 3.0
    peak_frac: float = 0.4
    intensity_power: float = 2.0
    band_average: bool = False
    local_noise: bool = False
    step_k: float = 6.0
    ext_gap_mm: float = 5.0
    axis_gate_deg: float = 0.0
    entry_gap_mm: float = 8.0
    n_full: int = 3
    n_screen: int = 99
    scale: int = 2
    min_sigma_px: float = 0.8
    noise_norm: bool = False
    weight_cap_q: float = 1.0


US_PARAMS = NeedleParams(snr_threshold=26.0, side_mm=2.0, min_angle_deg=14.0, n_peaks=10,
                         parallel_penalty=1.0)
FL_PARAMS = NeedleParams(snr_threshold=16.0, side_mm=1.2, min_length_mm=5.0, gap_mm=3.0,
                         n_peaks=20, peak_frac=0.0, parallel_penalty=2.0, axis_gate_deg=3.0,
                         scale=1, min_sigma_px=1.0, noise_norm=True, weight_cap_q=0.3,
                         k_candidates=6000, intensity_power=0.0, n_screen=6)


@dataclass(frozen=True)
class NeedleDetection:
    """Result of :func:`detect_needle`.

    found: a needle was detected; tip_px (col, row) pixels; tip_image_mm (x, y) mm in the
    image plane; tip_patient_mm (R, A, S) mm via ``ImageToPatient`` (the detector plane in
    fluoroscopy); shaft_px ((col, row) proximal end, (col, row) tip end); angle_deg: shaft
    orientation 0–180° from the image horizontal, counter-clockwise on screen (for US
    with the probe face on top, the insertion angle to the skin line is
    ``min(angle_deg, 180 - angle_deg)``); confidence 0..1; score: the raw SNR."""

    found: bool
    tip_px: tuple[float, float] | None = None
    tip_image_mm: tuple[float, float] | None = None
    tip_patient_mm: tuple[float, float, float] | None = None
    shaft_px: tuple[tuple[float, float], tuple[float, float]] | None = None
    angle_deg: float | None = None
    confidence: float = 0.0
    score: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def insertion_angle_deg(self) -> float | None:
        """Angle to the image horizontal folded to 0–90° (US: to the skin line)."""
        if self.angle_deg is None:
            return None
        return float(min(self.angle_deg, 180.0 - self.angle_deg))


NOT_FOUND = NeedleDetection(False)


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
        cand.append(NL.fit_line(sc * xs[near] + o, sc * ys[near] + o, ws[near]))
    found, lines = [], []
    for c, u in cand:
        d = _measure(frame, g_full, c, u, sp, prm, inverted, quick=True)
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
        d = _measure(frame, g_full, *lines[i], sp, prm, inverted)
        d = _rescore(d, d.score * factor[i], prm)
        if d.score > best.score:
            best = d
    return best


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


def _measure(frame: Frame, g: np.ndarray, c: np.ndarray, u: np.ndarray, sp: float,
             prm: NeedleParams, inverted: bool, quick: bool = False) -> NeedleDetection:
    """Contrast profile along the line (c, u) on the lightly smoothed image ``g``;
    ``quick``: the score and the strong run only (no tip search)."""
    h, w = g.shape
    span = NL.clip_line(c, u, w, h, 1.0)
    if span is None:
        return NOT_FOUND
    t = np.arange(span[0], span[1], 0.5)
    if t.size < 8:
        return NOT_FOUND
    side = max(prm.side_mm / sp, 2.5)
    far = prm.shadow_mm / sp
    offs = np.array([-side, -0.5, 0.0, 0.5, side, -far, far,
                     -side - 1.0, -side + 1.0, side - 1.0, side + 1.0], np.float32)
    pr = NL.line_profiles(g, c, u, t, offs)
    if prm.band_average:  # side bands of 3 samples, mean on-line (less noise)
        on = pr[1:4].mean(axis=0)
        s1 = (pr[0] + pr[7] + pr[8]) / 3.0
        s2 = (pr[4] + pr[9] + pr[10]) / 3.0
    else:
        on = pr[1:4].max(axis=0)
        s1, s2 = pr[0], pr[4]
    con = on - np.maximum(s1, s2)
    box = max(3, int(round(1.0 / sp)))  # ~1 mm smoothing along the line
    ker = np.ones(box, np.float32) / box
    con_s = np.convolve(con, ker, mode="same")
    sig = float(np.std(s1 - s2)) / np.sqrt(2.0) / np.sqrt(box) + 1e-4
    ok = con_s > prm.run_k * sig
    if frame.modality == "us":
        ok &= (s1 > 0) & (s2 > 0)  # inside the sector
    i0, i1 = NL.longest_run(ok, int(round(prm.gap_mm / sp * 2)))
    if i0 < 0:
        return NOT_FOUND
    length_px = (i1 - i0) * 0.5
    if length_px * sp < prm.min_length_mm:
        return NOT_FOUND
    seg = con[i0:i1 + 1]
    # noise beside the run itself (the rest of the line may cross brighter speckle)
    d12 = (s1 - s2)[i0:i1 + 1] if prm.local_noise else (s1 - s2)
    snr = float(seg.mean() / (float(np.std(d12)) / np.sqrt(2.0) + 1e-4)
                * np.sqrt(max(length_px, 1.0) / 2.0))
    p_a = c + t[i0] * u
    p_b = c + t[i1] * u
    tip_first = _tip_is_first(frame, p_a, p_b, w, h)
    gap_mm = 0.0
    ratio = 1.0
    if frame.modality == "us":
        # the shaft enters from the sector's border: penalise a proximal end far inside
        fov = pr[2] > 0
        if tip_first:
            out = np.flatnonzero(~fov[i1:])
            gap_mm = (out[0] if out.size else t.size - i1) * 0.5 * sp
            out = np.flatnonzero(~fov[:i0 + 1])
            free_mm = (i0 - out[-1] if out.size else i0) * 0.5 * sp
        else:
            out = np.flatnonzero(~fov[:i0 + 1])
            gap_mm = (i0 - out[-1] if out.size else i0) * 0.5 * sp
            out = np.flatnonzero(~fov[i1:])
            free_mm = (out[0] if out.size else t.size - i1) * 0.5 * sp
        # the tip is a free end inside the sector (a fascia line runs border to border)
        snr *= float(np.clip(free_mm / prm.free_end_mm, 0.2, 1.0))
        snr *= float(np.clip(1.0 - (gap_mm - prm.entry_gap_mm) / 20.0, 0.25, 1.0))
        # bone: a bright surface over a full acoustic shadow; the thin shaft shadows little
        nrm_row = u[0]  # row component of the +offset normal (-u_y, u_x)
        below, above = (pr[6], pr[5]) if nrm_row > 0 else (pr[5], pr[6])
        ratio = float(below[i0:i1 + 1].mean() / (above[i0:i1 + 1].mean() + 1e-6))
        snr *= float(np.clip(ratio / prm.shadow_ratio, 0.2, 1.0))
    if quick:
        ang = float(np.degrees(np.arctan2(-(p_b - p_a)[1], (p_b - p_a)[0])) % 180.0)
        return NeedleDetection(False, shaft_px=(tuple(p_a), tuple(p_b)), angle_deg=ang,
                               score=snr)
    # hysteresis: follow a fainter shaft (e.g. past a fascia) distally, ~3 mm smoothing
    box3 = max(5, int(round(3.0 / sp * 2)))
    con3 = np.convolve(con, np.ones(box3, np.float32) / box3, mode="same")
    # weak support: above the speckle's own level of the 3-mm contrast (it is biased
    # negative by the max of the two sides), measured on the line away from the run
    bg = np.r_[con3[:max(i0 - box3, 0)], con3[i1 + box3 + 1:]]
    min_step = None
    if bg.size >= 2 * box3:
        mu = float(np.median(bg))
        sd = 1.4826 * float(np.median(np.abs(bg - mu))) + 1e-4
        weak = con3 > mu + prm.weak_k * sd
        raw = np.r_[con[:max(i0 - box3, 0)], con[i1 + box3 + 1:]]
        sd1 = 1.4826 * float(np.median(np.abs(raw - np.median(raw)))) + 1e-4
        min_step = prm.step_k * sd1 * np.sqrt(2.0 / max(3, int(round(2.0 / sp * 2))))
    else:
        weak = con3 > prm.weak_k * sig * np.sqrt(box / box3)
    gap = int(round(prm.ext_gap_mm / sp * 2))  # a fascia crossing the side profiles
    s_end = i0 if tip_first else i1
    j, miss = s_end, 0
    step = -1 if tip_first else 1
    while 0 < j < t.size - 1 and miss <= gap:
        j += step
        miss = 0 if weak[j] else miss + 1
    e_end = j - step * miss
    # tip: the strongest step down of the contrast (shaft -> tissue) between the strong
    # run's end and the extended end, ± 2 mm; two 2-mm windows, sub-sample parabola
    wdw = max(3, int(round(2.0 / sp * 2)))
    tt = NL.step_tip(t, con, s_end, e_end, wdw, tip_first, min_step)
    tip = c + tt * u
    tail = p_b if tip_first else p_a
    i0, i1 = (min(i0, e_end), i1) if tip_first else (i0, max(i1, e_end))
    conf = float(1.0 / (1.0 + np.exp(-(snr - prm.snr_threshold) / prm.snr_scale)))
    d = tip - tail
    ang = float(np.degrees(np.arctan2(-d[1], d[0])) % 180.0)
    tip_img = (float(tip[0] * frame.spacing_mm[1]), float(tip[1] * frame.spacing_mm[0]))
    tip_pat = frame.pixel_to_patient(tip[0], tip[1])
    return NeedleDetection(
        found=conf >= 0.5, tip_px=(float(tip[0]), float(tip[1])), tip_image_mm=tip_img,
        tip_patient_mm=tuple(float(x) for x in tip_pat),
        shaft_px=((float(tail[0]), float(tail[1])), (float(tip[0]), float(tip[1]))),
        angle_deg=ang, confidence=conf, score=snr,
        extra={"length_mm": float(length_px * sp), "inverted": inverted,
               "entry_gap_mm": float(gap_mm), "shadow_ratio": ratio, "contrast": float(seg.mean()),
               "on_level": float(np.median(on[i0:i1 + 1])),
               "side_balance": float(np.minimum(s1, s2)[i0:i1 + 1].mean()
                                     / (np.maximum(s1, s2)[i0:i1 + 1].mean() + 1e-6))})


def _tip_is_first(frame: Frame, p_a: np.ndarray, p_b: np.ndarray, w: int, h: int) -> bool:
    """Whether the run's first end (p_a) is the tip."""
    if frame.modality == "us":
        return bool(p_a[1] > p_b[1])  # the deeper end
    m = 0.04 * max(w, h)

    def at_border(p):
        return p[0] < m or p[1] < m or p[0] > w - 1 - m or p[1] > h - 1 - m
    ba, bb = at_border(p_a), at_border(p_b)
    if ba != bb:
        return bool(bb)
    ctr = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    return bool(np.linalg.norm(p_a - ctr) < np.linalg.norm(p_b - ctr))
