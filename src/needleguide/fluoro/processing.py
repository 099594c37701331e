"""Per-pose image processing of the fluoroscope: scatter and the display window.

Both depend on the anatomy's noise-free transmission at one C-arm pose and are cached
with it (``Fluoroscope._pose``); see docs/fluoro.md "Scatter and grid" and "Per frame".
"""

from __future__ import annotations

import cv2
import numpy as np

from needleguide.fluoro.beam import BeamModel
from needleguide.fluoro.settings import FluoroSettings


def display_window(ell: np.ndarray, mask: np.ndarray, pixel_mm: float,
                   s: FluoroSettings) -> tuple[np.ndarray, tuple[float, float]]:
    """Automatic range compression and window/level of a pose, from the anatomy only.

    Body = collimated pixels whose noise-free signal is attenuated by more than
    ``body_log_threshold`` (the raw beam beside the body and thin skin folds are out).
    Range compression (clinical unsharp-mask "harmonisation"): the body's large-scale
    log image (normalised Gaussian of σ ``range_compression_mm``, so air does not drag
    it) is removed by ``range_compression``. Window: ``window_percentiles`` of the
    compressed log image over the body eroded by 10 mm (no skin-edge ramp), widened by
    10 % below and 5 % above."""
    body = ((mask > 0) & (ell > s.body_log_threshold)).astype(np.float32)
    if body.sum() < 0.02 * body.size:  # no patient in the field: use the whole field
        body = (mask > 0).astype(np.float32)
    sig = s.range_compression_mm / pixel_mm
    num = cv2.GaussianBlur(ell * body, (0, 0), sig)
    den = cv2.GaussianBlur(body, (0, 0), sig)
    low = num / np.maximum(den, np.float32(1e-3))
    inb = body > 0
    low = np.float32(s.range_compression) * (low - np.float32(np.mean(low[inb])))
    # the window ignores the skin-edge ramp: body eroded by 10 mm (if enough is left)
    r = max(1, int(round(10.0 / pixel_mm)))
    core = cv2.erode(body, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                     (2 * r + 1, 2 * r + 1))) > 0
    if core.sum() < 0.02 * core.size:
        core = inb
    comp = (ell - low)[core]
    lo, hi = np.percentile(comp, s.window_percentiles) if comp.size else (0.0, 1.0)
    lo, hi = lo - 0.10 * (hi - lo), hi + 0.05 * (hi - lo)
    return low.astype(np.float32), (float(lo), float(max(hi, lo + 1e-3)))


def scatter_field(t: np.ndarray, ln_t: np.ndarray, mask: np.ndarray, detector_mm: float,
                  s: FluoroSettings, beam: BeamModel) -> np.ndarray:
    """Scatter at the detector behind the grid, in units of the unattenuated primary
    behind the grid (so SPR = scatter / T).

    Source: the primary photons that interact in the patient and still leave it, per
    pixel T·ln(1/T) inside the collimated field (scatter-kernel superposition form;
    air beside the body, T = 1, scatters nothing); spread by a two-Gaussian kernel on a
    64² grid with zero outside the field; × ``scatter_coefficient`` (no-grid SPR per
    unit ln attenuation, wide field); × grid scatter / primary transmission. ``beam``:
    the pose's beam (only the legacy ``scatter_to_primary`` override needs it)."""
    n = t.shape[0]
    if s.scatter_to_primary == 0.0 or s.scatter_coefficient == 0.0:
        return np.zeros_like(t, dtype=np.float32)
    a = s.scatter_exit_exponent
    tau = np.maximum(-ln_t, 0.0)
    src = (np.power(t, 1.0 - a) * tau * mask).astype(np.float32)
    m = 64
    small = cv2.resize(src, (m, m), interpolation=cv2.INTER_AREA)
    px = detector_mm / m
    (s1, s2), w1 = s.scatter_kernel_mm, s.scatter_kernel_mix
    blur = np.float32(w1) * cv2.GaussianBlur(small, (0, 0), s1 / px,
                                             borderType=cv2.BORDER_CONSTANT) \
        + np.float32(1.0 - w1) * cv2.GaussianBlur(small, (0, 0), s2 / px,
                                                  borderType=cv2.BORDER_CONSTANT)
    scatter = cv2.resize(blur, (n, n), interpolation=cv2.INTER_LINEAR)
    k = s.scatter_coefficient * s.scatter_transmission / s.primary_transmission
    if s.scatter_to_primary is not None:
        k = s.scatter_to_primary / reference_tau(beam)
    if a > 0:
        scatter *= np.power(t, a).astype(np.float32)
    return (scatter * np.float32(k) * mask).astype(np.float32)


def reference_tau(beam: BeamModel) -> float:
    """ln(1/T) of 20 g/cm² of soft tissue (≈ 20 cm water) for ``beam``."""
    return float(-beam.ln_transmission(np.array([20.0]), np.array([0.0]))[0])
