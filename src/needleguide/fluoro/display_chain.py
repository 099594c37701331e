"""The live image chain of a flat-panel C-arm, after the log image: motion-adaptive
recursive temporal filter, spatial noise reduction, edge enhancement, window/level,
display polarity, collimator; and the state a run carries (last-image hold).

Clinical flat-panel fluoroscopy averages the pulses of a run recursively (Riederer's
recursive filter, GE patent EP 0064192, 1982; "persistence" or "noise reduction" levels
on the console, Kotre & Guibelalde, BJR 2004;77:675), but lowers the weight of the past
where the image changes by more than the quantum noise (motion detection), so that a
moving needle or arriving contrast does not smear (motion-adaptive recursive filtering;
a noise-variance-conditioned threshold, Cesarelli et al., BioMed Eng OnLine 2019;18:94,
used 2σ; recursive filtering and frame rates: Balter, AJR 2014;203:W234). Per
pixel, with ℓ the new log image and y the filtered one:

    d = G_σm ⊛ (ℓ − y_prev),   z = |d| / σ_d,   k = α + (1 − α)·clip((z − z0)/(z1 − z0), 0, 1)
    y = y_prev + k·(ℓ − y_prev)

σ_d is the quantum noise of d expected from the pose's mean absorbed quanta per pixel
(a detector knows its signal, hence its quantum noise): static anatomy keeps the weight
α of the newest pulse (``temporal_filter``), a change of ≥ z1 σ passes at once. The
thresholds are (z0, z1) = (3, 6): at (2, 4) quantum noise alone opened the filter in ~5 %
of the pixels per pulse and left heavy-tailed blotches (kurtosis of a static frame's noise
2.0 against 0.35 for the plain filter; the contrast analyser then saw "opacified" noise in
half of the contrast-free frames); at (3, 6) the kurtosis is 0.37. After
the run the last filtered image stays on the monitor (last-image hold, no dose).
Numbers are *assumptions* within the published ranges; see docs/fluoro.md "Live image
chain".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numba as nb
import numpy as np

from needleguide.fluoro.settings import FluoroSettings

RUN_GAP_S = 0.5  # a longer pause between pulses starts a new run (the filter restarts)


@dataclass
class RunState:
    """State of one fluoroscopy run at one pose: the filtered log image, the scene time
    of its last pulse, the number of pulses, and the last displayed pixels (held)."""

    key: tuple
    image: np.ndarray
    time_s: float
    pulses: int = 1
    pixels: np.ndarray | None = None


@lru_cache(maxsize=32)
def noise_gain(detector_sigma_px: float, smooth_sigma_px: float) -> float:
    """Standard deviation of white noise of unit σ per pixel after the scintillator blur
    (σ ``detector_sigma_px``) and the motion detector's smoothing (σ ``smooth_sigma_px``),
    measured once on a seeded 256² field (cached)."""
    rng = np.random.default_rng(12345)
    w = rng.standard_normal((256, 256)).astype(np.float32)
    if detector_sigma_px > 0.15:
        w = cv2.GaussianBlur(w, (0, 0), detector_sigma_px)
    if smooth_sigma_px > 0.15:
        w = cv2.GaussianBlur(w, (0, 0), smooth_sigma_px)
    return float(w[16:-16, 16:-16].std())


def continues(run: RunState | None, key: tuple, time_s: float) -> bool:
    """Whether a pulse at ``time_s`` at pose ``key`` continues ``run``: same pose, scene
    time not going backwards, no pause longer than :data:`RUN_GAP_S` (pedal released)."""
    return run is not None and run.key == key and 0.0 <= time_s - run.time_s <= RUN_GAP_S


@nb.njit(cache=True, fastmath=True)
def _blend(prev, diff, ds, quanta, inv_var, a, z0, inv_span, out):  # pragma: no cover - jit
    """out = prev + k·diff, k = a + (1 − a)·clip((|ds|·√(quanta·inv_var) − z0)·inv_span)."""
    p, d, s, q, o = prev.ravel(), diff.ravel(), ds.ravel(), quanta.ravel(), out.ravel()
    for i in range(p.size):
        z = abs(s[i]) * np.sqrt(q[i] * inv_var)
        k = (z - z0) * inv_span
        k = 0.0 if k < 0.0 else (1.0 if k > 1.0 else k)
        o[i] = p[i] + (a + (1.0 - a) * k) * d[i]


def recursive_step(prev: np.ndarray, new: np.ndarray, quanta: np.ndarray,
                   s: FluoroSettings, pixel_mm: float, detector_sigma_px: float
                   ) -> np.ndarray:
    """One pulse of the motion-adaptive recursive filter: the new filtered log image.

    ``prev``: filtered log image of the run so far; ``new``: this pulse's log image;
    ``quanta``: mean absorbed quanta per pixel of this pulse (noise-free, float32), which
    sets the expected quantum noise of the difference."""
    a = np.float32(s.temporal_filter)
    diff = new - prev
    if a >= 1.0:
        return new
    if s.motion_detection:
        sm = s.motion_sigma_mm / pixel_mm
        ds = cv2.GaussianBlur(diff, (0, 0), sm) if sm > 0.15 else diff
        # σ of the smoothed difference in static anatomy: new pulse + filtered past
        g = noise_gain(round(detector_sigma_px, 3), round(sm, 3))
        var_rel = g * g * (1.0 + float(a) / (2.0 - float(a)))
        z0, z1 = s.motion_threshold_z
        out = np.empty_like(prev)
        _blend(np.ascontiguousarray(prev), np.ascontiguousarray(diff),
               np.ascontiguousarray(ds), np.ascontiguousarray(quanta, dtype=np.float32),
               np.float32(1.0 / var_rel), a, np.float32(z0),
               np.float32(1.0 / max(z1 - z0, 1e-3)), out)
        return out
    return prev + a * diff


def display_pixels(log_image: np.ndarray, low_pass: np.ndarray, window: tuple[float, float],
                   field: np.ndarray, s: FluoroSettings) -> np.ndarray:
    """Range compression (``low_pass``), window/level, light spatial noise reduction,
    unsharp-mask edge enhancement, display polarity and the collimator (``field``, 0..1)."""
    lo, hi = window
    v = (log_image - low_pass - np.float32(lo)) / np.float32(hi - lo)
    v = cv2.GaussianBlur(v, (0, 0), 0.7)  # spatial noise reduction
    k = s.edge_enhance
    if k > 0:
        # unsharp mask; two 9-px box passes ≈ Gaussian σ 3.7 px at O(1) per pixel
        low = cv2.blur(cv2.blur(v, (9, 9)), (9, 9))
        v = v + np.float32(k) * (v - low)
    v = np.clip(v, 0.0, 1.0)
    if s.display == "black-bone":
        v = 1.0 - v
    return (v * field).astype(np.float32)


def chain_settings(s: FluoroSettings) -> dict:
    """The live chain's settings as recorded in a pulsed Frame's settings."""
    return {"temporal_filter": s.temporal_filter,
            "motion_detection": ({"threshold_z": list(s.motion_threshold_z),
                                  "sigma_mm": s.motion_sigma_mm}
                                 if s.motion_detection else None)}


__all__ = ["RUN_GAP_S", "RunState", "chain_settings", "continues", "display_pixels",
           "noise_gain", "recursive_step"]
