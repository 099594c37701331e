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
from functools import lru_cache

import cv2
import numpy as np
from numba import njit
from scipy.optimize import nnls

from needleguide.guidance.contrast_kernels import (
    bbox,
    dilate_mask,
    grow_dilated,
    region_runs,
    row_runs,
    runs_sum,
)

try:  # the compiled Lawson-Hanson solver behind scipy.optimize.nnls, without its checks
    from scipy.optimize._slsqplib import nnls as _nnls_c
except ImportError:  # pragma: no cover - another scipy layout: the public function
    _nnls_c = None

TAUS_S = (0.08, 0.15, 0.25, 0.4, 0.6, 0.9)


@lru_cache(maxsize=8)
def _ellipse(r: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Elliptic structuring element of radius ``r`` px and its row half-widths."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return k, row_runs(k)


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

    The region (the union of the masks, dilated) grows with each new opacified pixel
    (a dilation of the union is the union of the dilations); the region sums of earlier
    frames are kept until it grows.
    """

    pixel_mm: float
    roi_dilate_mm: float = 6.0
    recursive_weight: float = 1.0
    before: np.ndarray | None = None
    maps: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    union: np.ndarray | None = None
    valid: np.ndarray | None = None
    _roi: np.ndarray | None = field(default=None, repr=False)
    _sums: list[float] = field(default_factory=list, repr=False)
    _far: list[float] | None = field(default=None, repr=False)
    _off: np.ndarray | None = field(default=None, repr=False)
    _idx: np.ndarray | None = field(default=None, repr=False)

    def add(self, cmap: np.ndarray, t_s: float, mask: np.ndarray) -> None:
        """Add one contrast map (positive = iodine) at ``t_s`` with its opacified mask."""
        self.maps.append(cmap)
        self.times.append(float(t_s))
        kernel, hw = self._kernel()
        if self.union is None:
            self.union = np.zeros(mask.shape, bool)
            self._roi = np.zeros(mask.shape, bool)
        box = bbox(mask)
        if box is None:
            return
        if hw is not None:
            grew = grow_dilated(self.union, mask, box[0], box[1], box[2], box[3], hw,
                                self._roi)
        else:  # pragma: no cover - every elliptic element has row runs
            new = mask & ~self.union
            self.union |= mask
            grown = dilate_mask(new, kernel)
            grew = bool((grown & ~self._roi).any())
            self._roi |= grown
        if grew:
            self._sums, self._far, self._off = [], None, None  # the region changed

    def _kernel(self) -> tuple[np.ndarray, np.ndarray | None]:
        return _ellipse(max(1, int(round(self.roi_dilate_mm / self.pixel_mm))))

    def _unfilter(self, y: list[float], y_before: float | None) -> np.ndarray:
        a = self.recursive_weight
        y = np.asarray(y, float)
        if a >= 1.0:
            return y
        prev = np.concatenate([[y[0] if y_before is None else y_before], y[:-1]])
        return (y - (1.0 - a) * prev) / a

    def roi(self) -> np.ndarray:
        """The integration region: the union of the opacified masks dilated by
        ``roi_dilate_mm`` (``cv2.dilate`` with an elliptic kernel)."""
        return self._roi.copy()

    def _far_roi(self, roi: np.ndarray) -> np.ndarray | None:
        """The region shifted by half (or a quarter of) the image: the first shift whose
        copy misses it and lies on pixels that carry signal (≥ 90 % valid)."""
        h, w = roi.shape
        n = max(int(roi.sum()), 1)
        box = bbox(roi)
        if box is None:
            return None
        for dy, dx in ((0, w // 2), (h // 2, 0), (h // 2, w // 2), (h // 4, 0),
                       (-h // 4, 0), (0, w // 4), (0, -w // 4)):
            hit, n_valid = _shift_overlap(roi, box[0], box[1], box[2], box[3], dy, dx,
                                          self.valid)
            if hit:
                continue
            if self.valid is None or n_valid >= 0.9 * n:
                return np.roll(roi, (dy, dx), axis=(0, 1))
        return None

    def _region_sums(self, runs: np.ndarray, maps: list[np.ndarray]) -> list[float]:
        buf = np.empty(int(runs[:, 1].sum()), np.float32)
        return [runs_sum(np.ascontiguousarray(m, np.float32), runs, buf) for m in maps]

    def signal(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Times (s), ROI-integrated signal of every frame and its noise σ (same units)."""
        px2 = self.pixel_mm ** 2
        roi = self._roi
        if not self._sums:  # (the region changed: every frame again)
            self._idx = region_runs(roi, bbox(roi))
            self._sums.append(0.0 if self.before is None else
                              self._region_sums(self._idx, [self.before])[0])
        self._sums += self._region_sums(self._idx, self.maps[len(self._sums) - 1:])
        s = self._unfilter(self._sums[1:], None if self.before is None else self._sums[0]) \
            * px2
        if self._off is None:
            off = self._far_roi(roi)
            self._off = None if off is None else region_runs(off, bbox(off))
        off = self._off
        if off is not None and len(self.maps) >= 3:
            # frame-to-frame differences of the same region away from the contrast: the
            # mask noise cancels, twice the per-frame variance remains
            if self._far is None:
                self._far = [0.0 if self.before is None else
                             self._region_sums(off, [self.before])[0]]
            self._far += self._region_sums(off, self.maps[len(self._far) - 1:])
            far = self._unfilter(self._far[1:], None if self.before is None
                                 else self._far[0])
            d = np.diff(far * px2)
            sig = float(np.sqrt(np.mean(d * d) / 2.0))
        else:
            rest = ~roi if self.valid is None else (~roi & self.valid)
            sig = float(np.std(self.maps[-1][rest]) * np.sqrt(roi.sum())) * px2
        return np.asarray(self.times), s, max(sig, 1e-9)


@njit(cache=True)
def _shift_overlap(roi, y0, y1, x0, x1, dy, dx, valid):
    """For ``sh = np.roll(roi, (dy, dx))``: (``(sh & roi).any()``, ``(sh & valid).sum()``)
    (``valid`` None: 0), from the region's pixels in its bounding box."""
    h, w = roi.shape
    hit = False
    nv = 0
    for i in range(y0, y1):
        for j in range(x0, x1):
            if roi[i, j]:
                qi, qj = (i + dy) % h, (j + dx) % w
                if roi[qi, qj]:
                    hit = True
                if valid is not None and valid[qi, qj]:
                    nv += 1
    return hit, nv


def _rss(cols: list[np.ndarray], y: np.ndarray) -> float:
    """Residual sum of squares of the non-negative fit of ``y`` by ``cols`` plus a free
    offset (the reference of :func:`_rss_a`)."""
    a = np.stack(cols + [np.ones_like(y), -np.ones_like(y)], axis=1)
    _, r = nnls(a, y)
    return float(r * r)


def _rss_a(a: np.ndarray, y: np.ndarray) -> float:
    """:func:`_rss` of a ready design matrix ``a`` (C-contiguous float64, its last two
    columns 1 and −1): the same solver on the same numbers."""
    if _nnls_c is None:
        _, r = nnls(a, y)
    else:
        _, r, info = _nnls_c(a, y, 3 * a.shape[1])
        if info == 3:
            raise RuntimeError("Maximum number of iterations reached.")
    return float(r * r)


def saturation_llr(t_s: np.ndarray, s: np.ndarray, sigma: float, t0_s: float,
                   step_s: float | None = None, min_frames: int = 3) -> tuple[float, float]:
    """Log-likelihood ratio saturation : accumulation of the signal ``s`` at times ``t_s``
    (s) with noise ``sigma``; the start is searched between ``t0_s`` (last frame known to
    precede the injection) and the last frame. Returns (llr, τ of the best saturation fit
    in s). The start leaves at least ``min_frames`` frames after it, so a single jump (a
    region first seen) is not taken for a knee. (The design matrices of every start are
    built at once; the fits are those of :func:`saturation_llr_reference`.)"""
    t = np.asarray(t_s, float)
    y = np.ascontiguousarray(s, float)
    if t.size < min_frames + 1:
        return 0.0, float("nan")
    dt = step_s or float(np.median(np.diff(t))) if t.size > 1 else 0.1
    starts = np.arange(t0_s, t[-min_frames] + 1e-9, max(dt / 2.0, 1e-3))
    u = np.clip(t[None, :] - starts[:, None], 0.0, None)  # (start, frame)
    acc = np.empty(u.shape + (4,))
    acc[..., 0], acc[..., 1], acc[..., 2], acc[..., 3] = u, u * u, 1.0, -1.0
    sat = np.empty((u.shape[0], len(TAUS_S)) + u.shape[1:] + (4,))
    for k, tau in enumerate(TAUS_S):
        sat[:, k, :, 0] = 1.0 - np.exp(-u / tau)
    sat[..., 1], sat[..., 2], sat[..., 3] = u[:, None, :], 1.0, -1.0
    best_a = best_b = np.inf
    tau_b = float("nan")
    for i in np.flatnonzero(np.count_nonzero(u, axis=1) >= 2):
        best_a = min(best_a, _rss_a(acc[i], y))
        for k, tau in enumerate(TAUS_S):
            r = _rss_a(sat[i, k], y)
            if r < best_b:
                best_b, tau_b = r, tau
    if not np.isfinite(best_a) or not np.isfinite(best_b):
        return 0.0, float("nan")
    return float((best_a - best_b) / (2.0 * sigma * sigma)), tau_b


def saturation_llr_reference(t_s: np.ndarray, s: np.ndarray, sigma: float, t0_s: float,
                             step_s: float | None = None, min_frames: int = 3
                             ) -> tuple[float, float]:
    """:func:`saturation_llr` one start at a time (the reference it is tested against)."""
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
