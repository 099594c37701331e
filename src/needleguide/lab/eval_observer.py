"""What a human eye would catch: a non-prewhitening matched-filter (NPW) observer on the
displayed frames, and the contrast-to-noise ratio (CNR) of the injectate against its
background. Evaluation code: it reads truth (noise-free renders of the same run), never
used by the analysers.

Observer (signal known exactly in shape and place, background unknown — the NPW model,
e.g. ICRU Report 54; Barrett & Myers 2004): at display frame t the template is the
noise-free contrast signal s(t) = F₀(t) − F₀(pre) (the same run rendered without quantum
noise, minus its last pre-injection frame) where |s| ≥ 10 % of its peak, made zero-mean
over its box (a local-contrast detector: the eye sees a structure darker than its
surround, not absolute grey). The statistic is the template's correlation with E(t), the
frames the eye integrates (live: the mean of the displayed frames of the last
``EYE_INTEGRATION_S`` = 0.12 s — the human visual system's temporal integration in
fluoroscopy, ≈ 3.5 frames at 30 /s: "Perception of fluoroscopy last-image hold", Wilson's
group, Med Phys; DSA: one frame), at the signal's place, standardised by the same
correlation at ``N_NULL`` places of the same frame away from the signal:

    d_obs(t) = (λ(t) − mean λ_null) / σ(λ_null)

so the live image's anatomy (bone edges, the needle) counts as noise as the quantum noise
does — on DSA the subtraction has removed it. The observer reports the signal when
max_t d_obs ≥ θ; θ is set on DSA: the value whose false-alarm rate is ``DSA_FALSE_ALARM``
(5 %) over a DSA run's subtracted frames (independent frames: θ = Φ⁻¹((1 − 0.05)^(1/n))),
then used unchanged on live frames; false alarms (a null place's d_obs ≥ θ) are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.stats import norm

EYE_INTEGRATION_S = 0.12
DSA_FALSE_ALARM = 0.05
TEMPLATE_FRACTION = 0.1


@dataclass
class ObserverRun:
    """Per-frame observer output of one sequence: times (s), d_obs (the statistic at the
    signal's place, in units of the σ over the null places), d' (the same on the
    noise-free frames), and d_null (frames × null places: each null place standardised
    against the others, leave one out)."""

    times: np.ndarray
    d_obs: np.ndarray
    d_prime: np.ndarray
    d_null: np.ndarray

    def detected(self, theta: float) -> bool:
        return bool(self.d_obs.size and self.d_obs.max() >= theta)

    def false_alarm(self, theta: float) -> float:
        """Share of the null places (no signal) at which max_t d ≥ ``theta``."""
        if not self.d_null.size:
            return 0.0
        return float(np.mean(self.d_null.max(axis=0) >= theta))


def dsa_threshold(n_frames: int, false_alarm: float = DSA_FALSE_ALARM) -> float:
    """θ (units of σ) at which ``n_frames`` independent signal-absent frames exceed it
    with probability ``false_alarm`` (one-sided)."""
    n = max(int(n_frames), 1)
    return float(norm.ppf((1.0 - false_alarm) ** (1.0 / n)))


def eye(frames: list[np.ndarray], times: np.ndarray, window_s: float) -> list[np.ndarray]:
    """The frames the eye integrates at each time: the mean of the displayed frames whose
    time lies within ``window_s`` before it (the frame itself at least)."""
    out = []
    for i, t in enumerate(times):
        k = [j for j in range(i + 1) if t - times[j] < window_s - 1e-9]
        out.append(np.mean([frames[j] for j in k], axis=0) if len(k) > 1 else frames[i])
    return out


N_NULL = 24
N_NULL_KEEP = 6  # null places kept per frame for the false-alarm count (the same places)


def _null_offsets(h: int, w: int, support: np.ndarray, shape: tuple[int, int],
                  box: tuple[int, int], n: int = N_NULL) -> list[tuple[int, int]]:
    """Up to ``n`` box origins (row, col) inside the image, on rings around the signal's
    box, whose box does not overlap the (dilated) signal ``support``."""
    r0, c0 = box
    out = []
    for ring in (1.3, 1.9, 2.6, 3.4):
        for a in np.linspace(0.0, 2 * np.pi, 12, endpoint=False) + ring:
            r = int(round(r0 + ring * max(h, 12) * np.sin(a)))
            c = int(round(c0 + ring * max(w, 12) * np.cos(a)))
            if r < 0 or c < 0 or r + h > shape[0] or c + w > shape[1]:
                continue
            if support[r:r + h, c:c + w].any():
                continue
            out.append((r, c))
            if len(out) >= n:
                return out
    return out


def observe(noisy: list[np.ndarray], clean: list[np.ndarray], times: np.ndarray, pre: int,
            window_s: float = EYE_INTEGRATION_S, background: np.ndarray | None = None,
            pixel_mm: float = 1.0) -> ObserverRun:
    """NPW observer over the frames after index ``pre`` (the last frame without contrast;
    live) — ``noisy``: the displayed frames, ``clean``: the noise-free render, display
    pixels; ``background``: the noise-free signal-absent frame (default ``clean[pre]``;
    DSA: mid-grey). d' is the same statistic on the noise-free frames."""
    times = np.asarray(times, float)
    b = clean[pre] if background is None else background
    e1 = eye(noisy, times, window_s)
    pad = max(2, int(round(3.0 / pixel_mm)))
    d_obs, d_pr, d_null, tt = [], [], [], []
    for i in range(pre + 1, len(times)):
        s = clean[i] - b
        peak = float(np.abs(s).max())
        if peak <= 1e-6:
            continue
        sup = np.abs(s) >= TEMPLATE_FRACTION * peak
        rr, cc = np.nonzero(sup)
        r0, r1 = max(rr.min() - pad, 0), min(rr.max() + pad + 1, s.shape[0])
        c0, c1 = max(cc.min() - pad, 0), min(cc.max() + pad + 1, s.shape[1])
        t = np.where(sup, s, 0.0)[r0:r1, c0:c1].astype(np.float32)
        t -= t.mean()  # local contrast: zero response to a uniform grey
        h, w = t.shape
        near = cv2.dilate(sup.astype(np.uint8), np.ones((2 * pad + 1,) * 2, np.uint8)) > 0
        offs = _null_offsets(h, w, near, s.shape, (r0, c0))
        if len(offs) < 6:
            continue
        f = e1[i].astype(np.float32)
        lam = float(np.sum(t * f[r0:r1, c0:c1]))
        null = np.array([float(np.sum(t * f[r:r + h, c:c + w])) for r, c in offs])
        sd = float(null.std(ddof=1))
        if sd <= 0:
            continue
        fc = clean[i].astype(np.float32)
        null0 = np.array([float(np.sum(t * fc[r:r + h, c:c + w])) for r, c in offs])
        d_obs.append((lam - float(null.mean())) / sd)
        d_pr.append((float(np.sum(t * fc[r0:r1, c0:c1])) - float(null0.mean())) / sd)
        loo = [(null[k] - np.delete(null, k).mean()) / max(np.delete(null, k).std(ddof=1),
                                                             1e-12)
               for k in range(min(len(null), N_NULL_KEEP))]
        d_null.append(loo)
        tt.append(times[i])
    k = min((len(x) for x in d_null), default=0)
    return ObserverRun(np.array(tt), np.array(d_obs), np.array(d_pr),
                       np.array([x[:k] for x in d_null]).reshape(len(d_null), k))


def _region_and_ring(clean_signal: np.ndarray, pixel_mm: float, fraction: float,
                     ring_mm: tuple[float, float]):
    """(signal, injectate region, background ring) of a noise-free contrast signal, or
    None when there is no signal: region where |s| ≥ ``fraction`` of its peak, ring
    ``ring_mm`` around it."""
    s = np.asarray(clean_signal, np.float32)
    peak = float(np.abs(s).max())
    if peak <= 1e-6:
        return None
    region = (np.abs(s) >= fraction * peak).astype(np.uint8)
    r0, r1 = (max(1, int(round(v / pixel_mm))) for v in ring_mm)
    k0 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r0 + 1, 2 * r0 + 1))
    k1 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r1 + 1, 2 * r1 + 1))
    ring = (cv2.dilate(region, k1) > 0) & ~(cv2.dilate(region, k0) > 0)
    return s, region, ring


def cnr(clean_signal: np.ndarray, noise_a: np.ndarray, noise_b: np.ndarray, pixel_mm: float,
        fraction: float = 0.5, ring_mm: tuple[float, float] = (3.0, 10.0)) -> float | None:
    """Contrast-to-noise ratio of the injectate against its background in one displayed
    frame: (mean noise-free signal over the injectate — where |s| ≥ ``fraction`` of its
    peak — minus its mean over a ring ``ring_mm`` around it) / the per-pixel noise σ of
    the display there, (a − b)/√2 of two noisy renders of the same frame. None when
    there is no signal."""
    found = _region_and_ring(clean_signal, pixel_mm, fraction, ring_mm)
    if found is None:
        return None
    s, region, ring = found
    inside = region > 0
    if not ring.any():
        return None
    noise = (np.asarray(noise_a, np.float32) - np.asarray(noise_b, np.float32)) / np.sqrt(2.0)
    sigma = float(np.std(noise[inside | ring]))
    if sigma <= 0:
        return None
    return float(abs(s[inside].mean() - s[ring].mean()) / sigma)


def renders(fl, scene, carm, times: np.ndarray, dsa_times: list[float], window: float
            ) -> dict:
    """The noise-free live and DSA renders of a run of the fluoroscope ``fl`` (its
    settings and pose are kept; the noise switch is restored after): display pixels."""
    from needleguide.fluoro import dsa_sequence

    s0 = fl.settings
    try:
        fl.settings = s0.model_copy(update={"noise": False})
        live = [fl.frame(scene.with_time(float(t)), "pulsed", carm).pixels for t in times]
        d = dsa_sequence(fl, [scene.with_time(float(t)) for t in dsa_times], carm=carm,
                         window=window)
    finally:
        fl.settings = s0
    return {"live_clean": live, "dsa_clean": [f.pixels for f in d[1:]]}


def observe_case(live: list, dsa: list, extra: dict, times: np.ndarray, n_mask: int,
                 dsa_times: list[float]) -> dict:
    """Observer runs (live, DSA) of one case from its frames (``live``, ``dsa``: Frames;
    DSA with the mask first) and :func:`renders`."""
    px = float(live[0].spacing_mm[0])
    lv = observe([f.pixels for f in live], extra["live_clean"], np.asarray(times),
                 n_mask - 1, pixel_mm=px)
    sub = [f.pixels for f in dsa[1:]]
    ds = None
    if sub:
        # the noise-free subtraction without contrast: mid-grey inside the collimated field
        mid = (0.5 * (np.max(extra["dsa_clean"], axis=0) > 0)).astype(np.float32)
        ds = observe(sub, extra["dsa_clean"], np.asarray(dsa_times[1:]), -1, window_s=1e-6,
                     background=mid, pixel_mm=px)
    return {"live": lv, "dsa": ds}


def cnr_background(clean_signal: np.ndarray, frame: np.ndarray, pixel_mm: float,
                   fraction: float = 0.5, ring_mm: tuple[float, float] = (3.0, 10.0)
                   ) -> float | None:
    """Conspicuity: the injectate's contrast (as in :func:`cnr`) over the standard
    deviation of the displayed ``frame`` in the ring around it — everything the eye must
    tell it from: quantum noise and, on a live image, the anatomy (bone edges, the needle)
    that a subtraction removes."""
    found = _region_and_ring(clean_signal, pixel_mm, fraction, ring_mm)
    if found is None:
        return None
    s, region, ring = found
    sd = float(np.std(np.asarray(frame, np.float32)[ring])) if ring.any() else 0.0
    if sd <= 0:
        return None
    return float(abs(s[region > 0].mean() - s[ring].mean()) / sd)


def summarize(runs: list[dict], theta: float) -> dict:
    """Observer figures over intravascular cases: ``runs`` of {'live': ObserverRun,
    'dsa': ObserverRun}. Detection rates, live detection among the DSA-detected (Hong
    2014's measure: live fluoroscopy caught 71 % of the intravascular uptake DSA showed),
    false alarms on noise alone, and d' quantiles."""
    live = [r["live"].detected(theta) for r in runs]
    dsa = [r["dsa"].detected(theta) for r in runs]
    both = sum(a and b for a, b in zip(live, dsa, strict=True))
    peak = {k: [float(r[k].d_prime.max()) for r in runs if r[k].d_prime.size]
            for k in ("live", "dsa")}
    return {
        "theta": round(theta, 3),
        "cases": len(runs),
        "dsa_detected": int(sum(dsa)),
        "live_detected": int(sum(live)),
        "live_given_dsa": (both / sum(dsa)) if sum(dsa) else None,
        "hong_2014_live_given_dsa": 0.71,
        "false_alarm_live": (float(np.mean([r["live"].false_alarm(theta) for r in runs]))
                             if runs else None),
        "false_alarm_dsa": (float(np.mean([r["dsa"].false_alarm(theta) for r in runs]))
                            if runs else None),
        "d_prime_peak_median": {k: (float(np.median(v)) if v else None)
                                for k, v in peak.items()},
    }


__all__ = ["DSA_FALSE_ALARM", "EYE_INTEGRATION_S", "ObserverRun", "cnr", "cnr_background",
           "dsa_threshold",
           "eye", "observe", "observe_case", "renders", "summarize"]
