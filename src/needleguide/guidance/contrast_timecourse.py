"""Time course of the opacified iodine: is it saturating (a vessel) or accumulating?

The signal is the contrast map integrated over a fixed region of interest around
everything opacified so far (the union of the opacified masks, dilated), so it is linear
in the projected iodine mass and its noise is the sum of the pixel noise over that region;
every earlier frame is re-integrated over the current region.

Two models of the signal S(t) after an unknown start ``t_s`` (≥ the last pre-injection
frame):

* accumulation (extravascular): S = b·u + c·u², b, c ≥ 0, u = (t − t_s)₊ — iodine stays
  where it is injected, at the injection rate (the opacified area may grow faster than
  linear while the rim rises above the noise);
* saturation (intravascular): S = a·(1 − exp(−u/τ)) + b·u, a, b ≥ 0 — the lumen fills
  within a transit time and then carries as much away as flows in (in = out), plus a
  slow part (capillary blush, a slowly filling plexus).

Both have an offset (mask noise common to all frames). The evidence for a vessel is the
log-likelihood ratio ``(RSS_accumulation − RSS_saturation) / (2σ²)`` with σ the noise of S
measured from frame-to-frame differences over the same region shifted away from the
contrast. Linear growth fits both equally (ratio ≈ 0); a knee (fast rise then flat) only
the saturation model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import nnls

TAUS_S = (0.08, 0.15, 0.25, 0.4, 0.6, 0.9)


@dataclass
class TimeCourse:
    """Running ROI-integrated signal of a contrast sequence (units: display · mm²).

    recursive_weight: weight ``a`` of the newest pulse in the fluoroscope's recursive
    (temporal) filter, y_k = a·x_k + (1 − a)·y_{k−1} (1 = none, DSA); the filter is linear,
    so the region sums are unfiltered exactly, x_k = (y_k − (1 − a)·y_{k−1}) / a, which
    undoes its lag (≈ (1 − a)/a frames) and whitens the noise. before: the contrast map of
    the frame just before the first one added (the last pre-injection frame), the y_{−1}
    of the first step. valid: the pixels that carry signal (not clipped at the display's
    black or white); the noise is measured only where they are.
    """

    pixel_mm: float
    roi_dilate_mm: float = 6.0
    recursive_weight: float = 1.0
    before: np.ndarray | None = None
    maps: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    union: np.ndarray | None = None
    valid: np.ndarray | None = None

    def add(self, cmap: np.ndarray, t_s: float, mask: np.ndarray) -> None:
        """Add one contrast map (positive = iodine) at ``t_s`` with its opacified mask."""
        self.maps.append(cmap)
        self.times.append(float(t_s))
        self.union = mask.copy() if self.union is None else (self.union | mask)

    def _unfilter(self, y: list[float], y_before: float | None) -> np.ndarray:
        a = self.recursive_weight
        y = np.asarray(y, float)
        if a >= 1.0:
            return y
        prev = np.concatenate([[y[0] if y_before is None else y_before], y[:-1]])
        return (y - (1.0 - a) * prev) / a

    def roi(self) -> np.ndarray:
        r = max(1, int(round(self.roi_dilate_mm / self.pixel_mm)))
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.dilate(self.union.astype(np.uint8), k).astype(bool)

    def _far_roi(self, roi: np.ndarray) -> np.ndarray | None:
        """The region shifted by half (or a quarter of) the image: the first shift whose
        copy misses it and lies on pixels that carry signal (≥ 90 % valid)."""
        h, w = roi.shape
        n = max(int(roi.sum()), 1)
        for dy, dx in ((0, w // 2), (h // 2, 0), (h // 2, w // 2), (h // 4, 0), (-h // 4, 0),
                       (0, w // 4), (0, -w // 4)):
            sh = np.roll(roi, (dy, dx), axis=(0, 1))
            if (sh & roi).any():
                continue
            if self.valid is None or (sh & self.valid).sum() >= 0.9 * n:
                return sh
        return None

    def signal(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Times (s), ROI-integrated signal of every frame and its noise σ (same units)."""
        px2 = self.pixel_mm ** 2
        roi = self.roi()
        s = self._unfilter([float(m[roi].sum()) for m in self.maps],
                           None if self.before is None else float(self.before[roi].sum())) * px2
        off = self._far_roi(roi)
        if off is not None and len(self.maps) >= 3:
            # frame-to-frame differences of the same region away from the contrast: the
            # mask noise cancels, twice the per-frame variance remains
            far = self._unfilter([float(m[off].sum()) for m in self.maps],
                                 None if self.before is None else float(self.before[off].sum()))
            d = np.diff(far * px2)
            sig = float(np.sqrt(np.mean(d * d) / 2.0))
        else:
            rest = ~roi if self.valid is None else (~roi & self.valid)
            sig = float(np.std(self.maps[-1][rest]) * np.sqrt(roi.sum())) * px2
        return np.asarray(self.times), s, max(sig, 1e-9)


def _rss(cols: list[np.ndarray], y: np.ndarray) -> float:
    a = np.stack(cols + [np.ones_like(y), -np.ones_like(y)], axis=1)
    _, r = nnls(a, y)
    return float(r * r)


def saturation_llr(t_s: np.ndarray, s: np.ndarray, sigma: float, t0_s: float,
                   step_s: float | None = None, min_frames: int = 3) -> tuple[float, float]:
    """Log-likelihood ratio saturation : accumulation of the signal ``s`` at times ``t_s``
    (s) with noise ``sigma``; the start is searched between ``t0_s`` (last frame known to
    precede the injection) and the last frame. Returns (llr, τ of the best saturation fit
    in s). The start leaves at least ``min_frames`` frames after it, so a single jump (a
    region first seen) is not taken for a knee."""
    t = np.asarray(t_s, float)
    y = np.asarray(s, float)
    if t.size < min_frames + 1:
        return 0.0, float("nan")
    dt = step_s or float(np.median(np.diff(t))) if t.size > 1 else 0.1
    starts = np.arange(t0_s, t[-min_frames] + 1e-9, max(dt / 2.0, 1e-3))
    best_a = best_b = np.inf
    tau_b = float("nan")
    for ts in starts:
        u = np.clip(t - ts, 0.0, None)
        if np.count_nonzero(u) < 2:
            continue
        best_a = min(best_a, _rss([u, u * u], y))
        for tau in TAUS_S:
            r = _rss([1.0 - np.exp(-u / tau), u], y)
            if r < best_b:
                best_b, tau_b = r, tau
    if not np.isfinite(best_a) or not np.isfinite(best_b):
        return 0.0, float("nan")
    return float((best_a - best_b) / (2.0 * sigma * sigma)), tau_b
