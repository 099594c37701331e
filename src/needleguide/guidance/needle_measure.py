"""Measurement of one candidate needle line: contrast profile along it against two side
profiles, the shaft's run, its SNR score with the modality's plausibility penalties, and
the tip (the most distal significant step down of the contrast, after following a
fainter shaft distally). Pixel units (col, row) unless named in mm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide.frame import Frame
from needleguide.guidance import needle_lines as NL
from needleguide.guidance import needle_runs as R
from needleguide.guidance.needle_types import NeedleDetection, NeedleParams


@dataclass(slots=True)
class Shaft:
    """One candidate line's profiles, strong run and score (what the tip search reuses)."""

    c: np.ndarray
    u: np.ndarray
    t: np.ndarray
    pr: np.ndarray
    on: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    con: np.ndarray
    con_s: np.ndarray
    sig: float
    sd12: float
    box: int
    side: float
    i0: int
    i1: int
    length_px: float
    snr: float
    p_a: np.ndarray
    p_b: np.ndarray
    tip_first: bool | None
    gap_mm: float
    ratio: float
    entry_depth_mm: float


def quick_detection(s: Shaft) -> NeedleDetection:
    """The quick result of a shaft: strong run, angle and score (not yet found)."""
    ang = float(np.degrees(np.arctan2(-(s.p_b - s.p_a)[1], (s.p_b - s.p_a)[0])) % 180.0)
    return NeedleDetection(False, shaft_px=(tuple(s.p_a), tuple(s.p_b)), angle_deg=ang,
                           score=s.snr)


def shaft(frame: Frame, g: np.ndarray, c: np.ndarray, u: np.ndarray, sp: float,
          prm: NeedleParams) -> Shaft | None:
    """Profiles along the line (c, u) on ``g``, its strong run of contrast and the score
    with the modality's penalties; None without a long enough run."""
    h, w = g.shape
    span = NL.clip_line(c, u, w, h, 1.0)
    if span is None:
        return None
    t = np.arange(span[0], span[1], 0.5)
    if t.size < 8:
        return None
    side = max(prm.side_mm / sp, 2.5)
    far = prm.shadow_mm / sp
    offs = np.array([-side, -0.5, 0.0, 0.5, side, -far, far,
                     -side - 1.0, -side + 1.0, side - 1.0, side + 1.0], np.float32)
    # only the rows used: sides and on-line; US shadow rows; side bands
    rows = 11 if prm.band_average else (7 if frame.modality == "us" else 5)
    pr = NL.line_profiles(g, c, u, t, offs[:rows])
    if prm.band_average:  # side bands of 3 samples, mean on-line (less noise)
        on = pr[1:4].mean(axis=0)
        s1 = (pr[0] + pr[7] + pr[8]) / 3.0
        s2 = (pr[4] + pr[9] + pr[10]) / 3.0
        con = on - np.maximum(s1, s2)
        d_all = s1 - s2
        sd_all = float(np.std(d_all))
    else:  # (numba, as the numpy above bit for bit)
        on, con, d_all, sd_all = R.side_contrast(pr)
        s1, s2 = pr[0], pr[4]
    box = max(3, int(round(1.0 / sp)))  # ~1 mm smoothing along the line
    ker = np.ones(box, np.float32) / box
    con_s = np.convolve(con, ker, mode="same")
    sig = sd_all / np.sqrt(2.0) / np.sqrt(box) + 1e-4
    # strong run: con_s > run_k·σ (and inside the US sector)
    i0, i1 = R.strong_run(con_s, float(prm.run_k * sig), s1, s2, frame.modality == "us",
                          int(round(prm.gap_mm / sp * 2)))
    if i0 < 0:
        return None
    length_px = (i1 - i0) * 0.5
    if length_px * sp < prm.min_length_mm:
        return None
    # noise beside the run itself (the rest of the line may cross brighter speckle)
    sd12 = float(R.std32(d_all[i0:i1 + 1])) if prm.local_noise else sd_all
    snr = float(np.float32(R.mean32(con[i0:i1 + 1])) / (sd12 / np.sqrt(2.0) + 1e-4)
                * np.sqrt(max(length_px, 1.0) / 2.0))
    p_a = c + t[i0] * u
    p_b = c + t[i1] * u
    # (which end is the tip: needed here by US only, else on the full measurement)
    tip_first = tip_is_first(frame, p_a, p_b, w, h) if frame.modality == "us" else None
    gap_mm = 0.0
    ratio = 1.0
    entry_depth_mm = 0.0
    if frame.modality == "fluoro" and prm.border_penalty < 1.0:
        # a line hugging one edge of the field (collimator, table, body outline) along
        # its whole run is not a needle coming in from the skin
        m = prm.border_frac * max(w, h)
        hug = (p_a[0] < m and p_b[0] < m) or (p_a[1] < m and p_b[1] < m) or \
            (p_a[0] > w - 1 - m and p_b[0] > w - 1 - m) or \
            (p_a[1] > h - 1 - m and p_b[1] > h - 1 - m)
        if hug:
            snr *= prm.border_penalty
    if frame.modality == "us":
        # the shaft enters from the sector's border: penalise a proximal end far inside
        fov = pr[2] > 0
        if tip_first:
            out = np.flatnonzero(~fov[i1:])
            k_in = i1 + (out[0] if out.size else t.size - 1 - i1)
            gap_mm = (k_in - i1) * 0.5 * sp
            out = np.flatnonzero(~fov[:i0 + 1])
            free_mm = (i0 - out[-1] if out.size else i0) * 0.5 * sp
        else:
            out = np.flatnonzero(~fov[:i0 + 1])
            k_in = out[-1] if out.size else 0
            gap_mm = (i0 - k_in) * 0.5 * sp
            out = np.flatnonzero(~fov[i1:])
            free_mm = (out[0] if out.size else t.size - i1) * 0.5 * sp
        # in-plane needles go in next to the probe's end, so they enter the field of view
        # within a few cm of the face (*assumption*: skin entry ≤ 25 mm beyond the end)
        y0 = float(np.asarray(frame.settings.get("ImageToProbe", np.eye(4)))[1, 3])
        entry_depth_mm = float((c[1] + t[k_in] * u[1]) * sp + y0)
        alpha = np.arctan2(abs(u[1]), abs(u[0]) + 1e-9)  # insertion angle to the face
        reach = prm.entry_depth_mm + prm.entry_reach_mm * float(np.tan(alpha))
        snr *= float(np.clip(1.0 - (entry_depth_mm - reach) / 20.0, 0.3, 1.0))
        # the tip is a free end inside the sector (a fascia line runs border to border)
        snr *= float(np.clip(free_mm / prm.free_end_mm, 0.2, 1.0))
        snr *= float(np.clip(1.0 - (gap_mm - prm.entry_gap_mm) / 20.0, 0.25, 1.0))
        # bone: a bright surface over a full acoustic shadow; the thin shaft shadows little
        nrm_row = u[0]  # row component of the +offset normal (-u_y, u_x)
        below, above = (pr[6], pr[5]) if nrm_row > 0 else (pr[5], pr[6])
        ratio = float(below[i0:i1 + 1].mean() / (above[i0:i1 + 1].mean() + 1e-6))
        snr *= float(np.clip(ratio / prm.shadow_ratio, 0.2, 1.0))
    return Shaft(c, u, t, pr, on, s1, s2, con, con_s, sig, sd12, box, side, i0, i1, length_px,
                 snr, p_a, p_b, tip_first, gap_mm, ratio, entry_depth_mm)


def measure_shaft(frame: Frame, g: np.ndarray, s: Shaft, sp: float, prm: NeedleParams,
                  inverted: bool) -> NeedleDetection:
    """The full measurement of a shaft: distal extension, tip, straightness (and US bend)
    penalties, confidence."""
    c, u, t, pr, on, s1, s2, con, con_s = s.c, s.u, s.t, s.pr, s.on, s.s1, s.s2, s.con, \
        s.con_s
    sig, box, side, i0, i1, snr, tip_first = s.sig, s.box, s.side, s.i0, s.i1, s.snr, \
        s.tip_first
    p_a, p_b, length_px = s.p_a, s.p_b, s.length_px
    if tip_first is None:
        tip_first = tip_is_first(frame, p_a, p_b, g.shape[1], g.shape[0])
    seg_mean = np.float32(R.mean32(con[i0:i1 + 1]))  # (seg.mean())
    i0s, i1s = i0, i1
    # hysteresis: follow a fainter shaft (e.g. past a fascia) distally, ~3 mm smoothing
    box3 = max(5, int(round(3.0 / sp * 2)))
    con3 = np.convolve(con, np.ones(box3, np.float32) / box3, mode="same")
    # weak support: above the speckle's own level of the 3-mm contrast (it is biased
    # negative by the max of the two sides), measured on the line away from the run
    lo, hi = max(i0 - box3, 0), i1 + box3 + 1  # bg: con3[:lo] and con3[hi:]
    n_bg = lo + max(con3.size - hi, 0)
    min_step = None
    if prm.parallel_bg:
        # the same 3-mm contrast on two lines parallel to this one (4 mm either side):
        # what speckle and crossing structures give without a needle (the line beyond the
        # strong run may hold a faint shaft, which would raise its own statistics)
        mu, sd = parallel_level(g, c, u, t, side, prm.shadow_mm / sp, box3)
        weak = con3 > mu + prm.weak_k * sd
        if n_bg > 0:
            min_step = _min_step(con, lo, hi, sp, prm)
    elif n_bg >= 2 * box3:
        mu, mad = R.median_mad_outside(con3, lo, hi)
        mu = float(mu)
        sd = 1.4826 * float(mad) + 1e-4
        weak = con3 > mu + prm.weak_k * sd
        min_step = _min_step(con, lo, hi, sp, prm)
    else:
        weak = con3 > prm.weak_k * sig * np.sqrt(box / box3)
    gap = int(round(prm.ext_gap_mm / sp * 2))  # a fascia crossing the side profiles
    s_end = i0 if tip_first else i1
    step = -1 if tip_first else 1
    e_end = _extend(weak, s_end, step, gap)
    if prm.ext_long_mm > 0 and prm.parallel_bg:
        # then the faintest deep shafts: the contrast over ~12 mm against the parallel lines
        boxl = min(max(box3, int(round(prm.ext_long_mm / sp * 2))), t.size)
        conl = np.convolve(con, np.ones(boxl, np.float32) / boxl, mode="same")
        mul, sdl = parallel_level(g, c, u, t, side, prm.shadow_mm / sp, boxl)
        e_end = _extend(conl > mul + prm.ext_long_k * sdl, e_end, step, gap)
    # tip: the strongest step down of the contrast (shaft -> tissue) between the strong
    # run's end and the extended end, ± 2 mm; two 2-mm windows, sub-sample parabola
    wdw = max(3, int(round(2.0 / sp * 2)))
    dr = frame.settings.get("dynamic_range_db") if frame.modality == "us" else None
    # (US: samples whose three rows lie in the sector; fluoroscopy does not use it)
    inside = (pr[2] > 0) & (pr[0] > 0) & (pr[4] > 0) if frame.modality == "us" else None
    if dr and prm.linear_tip:
        # log compression blooms a bright echo far into its PSF's tail: locate the step
        # on the echo amplitude (display v ∝ dB / dynamic range), where a blurred step's
        # steepest fall is at the edge itself
        k = np.float32(float(dr) / 20.0 * np.log(10.0))
        amp = np.exp(k * (pr[[1, 2, 3, 0, 4]] - 1.0))
        con_t = amp[:3].max(axis=0) - np.maximum(amp[3], amp[4])
        con_z, diff_z = con_t, amp[3] - amp[4]
        cands = NL.step_candidates(t, con, s_end, e_end, wdw, tip_first, min_step)
        box_hm = max(1, int(round(prm.hm_box_mm / sp * 2)))

        def refined(tc: float) -> float:  # half maximum of the amplitude, less the bias
            # (the half-maximum still lies beyond the tip by part of the PSF and the bevel)
            return NL.half_max_tip(t, con_t, tc, tip_first, prm.hm_back_mm / sp,
                                   prm.hm_ahead_mm / sp, box_hm) \
                + (1.0 if tip_first else -1.0) * prm.tip_offset_mm / sp
        tt = refined(float(cands[-1]))  # the most distal: a faint shaft ends at its own end
        # ... unless a more proximal step is an echo seen to end (stepping down sharply,
        # ≥ end_z) with little weak support beyond it: the distal ones are then speckle
        # bridged by the extension's gaps or a fascia the line crosses past the tip. Not
        # where the background beside the line steps too (≥ end_bg_z): a tissue layer's
        # boundary, where the shaft's echo fades and goes on
        bg = amp[3] + amp[4]
        for tc in cands[:-1] if prm.end_z > 0 else ():
            t2 = refined(float(tc))
            if tip_step_z(t, con_z, diff_z, t2, tip_first, sp, inside) >= prm.end_z and \
                    _support_beyond(t, weak, t2, tip_first, sp, prm.end_beyond_mm) \
                    <= prm.end_weak_frac and \
                    abs(tip_step_z(t, bg, diff_z, t2, tip_first, sp, inside)) < prm.end_bg_z:
                tt = t2
                break
    else:
        tt = NL.step_tip(t, con, s_end, e_end, wdw, tip_first, min_step)
        con_z, diff_z = con, pr[0] - pr[4]  # (US without a dynamic range: display values)
    if frame.modality == "us":
        tip_z = tip_step_z(t, con_z, diff_z, float(tt), tip_first, sp, inside)
    else:
        tip_z = float("inf")  # fluoroscopy: the tip is seen at any depth
    tip = c + tt * u
    bend = 0.0
    # a needle is straight: a bowed ridge (fascia, bone surface) along the fit is not
    sag_mm = 0.0
    check = snr >= 0.5 * prm.snr_threshold  # (only lines that could pass)
    if check and prm.max_sagitta_mm < 1e6:
        sag_mm = NL.sagitta_px(g, c, u, t[i0s], t[i1s], max(1.5 / sp, 3.0)) * sp
        if abs(sag_mm) > prm.max_sagitta_mm:
            snr *= prm.bow_penalty
    if check and frame.modality == "us" and prm.bend_penalty < 1.0:
        # a needle ends; a curved fascia or bone line goes on beside the fitted line
        bend = NL.bend_contrast(g, tip, -u if tip_first else u, side, 6.0 / sp,
                                prm.bend_angles_deg) / (float(seg_mean) + 1e-6)
        if bend > prm.bend_frac:
            snr *= prm.bend_penalty
    tail = p_b if tip_first else p_a
    i0, i1 = (min(i0, e_end), i1) if tip_first else (i0, max(i1, e_end))
    conf = float(1.0 / (1.0 + np.exp(-(snr - prm.snr_threshold) / prm.snr_scale)))
    d = tip - tail
    ang = float(np.degrees(np.arctan2(-d[1], d[0])) % 180.0)
    tip_img = (float(tip[0] * frame.spacing_mm[1]), float(tip[1] * frame.spacing_mm[0]))
    tip_pat = frame.pixel_to_patient(tip[0], tip[1])
    # float32 statistics as numpy's: std / mean of con_s over the strong run, median of
    # the on-line level and means of the darker / brighter side over the extended run
    cs_sd, cs_mean, on_med, lo_mean, hi_mean = (
        np.float32(v) for v in R.run_extras(con_s, i0s, i1s, on, s1, s2, i0, i1))
    return NeedleDetection(
        found=conf >= 0.5, tip_px=(float(tip[0]), float(tip[1])), tip_image_mm=tip_img,
        tip_patient_mm=tuple(float(x) for x in tip_pat),
        shaft_px=((float(tail[0]), float(tail[1])), (float(tip[0]), float(tip[1]))),
        angle_deg=ang, confidence=conf, score=snr,
        extra={"length_mm": float(length_px * sp), "entry_depth_mm": s.entry_depth_mm,
               "bend": bend, "sagitta_mm": sag_mm,
               "noise": float(s.sd12 / np.sqrt(2.0)),
               "cv": float(cs_sd / (abs(cs_mean) + 1e-6)), "inverted": inverted,
               "entry_gap_mm": float(s.gap_mm), "shadow_ratio": s.ratio,
               "contrast": float(seg_mean), "on_level": float(on_med),
               "side_balance": float(lo_mean / (hi_mean + 1e-6)),
               "tip_step_z": tip_z},
        tip_visible=bool(tip_z >= prm.tip_visible_z))


def _extend(ok: np.ndarray, start: int, step: int, gap: int) -> int:
    """Index where the run of ``ok`` from ``start`` in direction ``step`` ends, bridging up
    to ``gap`` samples without support."""
    j, miss = start, 0
    while 0 < j < ok.size - 1 and miss <= gap:
        j += step
        miss = 0 if ok[j] else miss + 1
    return j - step * miss


def _support_beyond(t: np.ndarray, weak: np.ndarray, tt: float, tip_first: bool, sp: float,
                    beyond_mm: float) -> float:
    """Share of the samples 0.5 mm to ``beyond_mm`` beyond the tip ``tt`` (distal) that
    have weak support (a faint shaft going on); 0 if there are none."""
    d_mm = (t - tt) * (-1.0 if tip_first else 1.0) * sp
    b = (d_mm > 0.5) & (d_mm <= beyond_mm)
    return float(weak[b].mean()) if b.any() else 0.0


def _min_step(con: np.ndarray, lo: int, hi: int, sp: float, prm: NeedleParams) -> float:
    """Smallest step down that can be the tip: ``step_k`` × the robust σ of the contrast
    off the run (``con`` outside [lo, hi)), for two 2-mm windows."""
    sd1 = 1.4826 * float(R.median_mad_outside(con, lo, hi)[1]) + 1e-4
    return prm.step_k * sd1 * np.sqrt(2.0 / max(3, int(round(2.0 / sp * 2))))


def parallel_level(g: np.ndarray, c: np.ndarray, u: np.ndarray, t: np.ndarray, side: float,
                   far: float, box: int) -> tuple[float, float]:
    """Median and robust σ of the ``box``-smoothed contrast (on-line minus the brighter of
    the two sides ``side`` px away) of the two lines ``far`` px either side, inside the
    image."""
    offs = np.array([far - side, far, far + side, -far - side, -far, -far + side], np.float32)
    pr = NL.line_profiles(g, c, u, t, offs)
    ker = np.ones(box, np.float32) / box
    vals = []
    for a, o, b in ((0, 1, 2), (3, 4, 5)):
        ok = (pr[a] > 0) & (pr[o] > 0) & (pr[b] > 0)
        cc = np.convolve(pr[o] - np.maximum(pr[a], pr[b]), ker, mode="same")
        vals.append(cc[ok])
    v = np.concatenate(vals)
    if v.size < 2 * box:
        return 0.0, 1.0
    med, mad = R.median_mad_outside(v, 0, 0)
    return float(med), 1.4826 * float(mad) + 1e-4


def tip_step_z(t: np.ndarray, con: np.ndarray, side_diff: np.ndarray, tt: float,
               tip_first: bool, sp: float, inside: np.ndarray,
               before_mm: tuple[float, float] = (0.3, 3.0),
               after_mm: tuple[float, float] = (0.5, 3.0)) -> float:
    """How sharply the echo ends at the tip: mean contrast 0.3–3 mm before the tip (on the
    shaft) minus 0.5–3 mm beyond it, over the noise of the two side profiles' difference
    (amplitude units). A shaft that fades into speckle short of its real tip ends
    gradually (≈ 0–2); a tip seen to its end steps down by ≥ 5. ``inside``: samples whose
    three profiles lie in the field of view; an echo that ends at the edge of the image
    is not seen to end (0)."""
    toward = 1.0 if tip_first else -1.0  # +t runs from the tip toward the hub
    d_mm = (t - tt) * toward * sp
    pre = (d_mm >= before_mm[0]) & (d_mm < before_mm[1])
    post = (d_mm <= -after_mm[0]) & (d_mm > -after_mm[1])
    if not pre.any() or not post.any() or not inside[post].all() or not inside[pre].all():
        return 0.0
    sd = float(np.std(side_diff[inside])) + 1e-6
    return float((con[pre].mean() - con[post].mean()) / sd)


def tip_is_first(frame: Frame, p_a: np.ndarray, p_b: np.ndarray, w: int, h: int) -> bool:
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
