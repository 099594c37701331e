"""The bands of the motion z map (:func:`.needle_motion_maps.motion_z`): every pixel of
the working grid falls in a band of local brightness × edge strength × depth (still
tissue decorrelates by an amount that depends on all three), and the decorrelation 1 − ρ
of still tissue is normalised by its median and MAD within the band. Both measured on
the pixels of every other row and column inside the scan area (``inside[::2, ::2]``).

Numba kernels over the grid, written in float32 as the OpenCV/numpy steps they replace
(``convertScaleAbs``, sub-grid gathers and histograms; the same bands and statistics,
``tests/test_us_needle_motion_kernels.py``), in a fraction of their time."""

from __future__ import annotations

import numpy as np
from numba import njit

DQ = 512  # histogram bins of 1 − ρ over [0, 2), on a square-root scale (fine near 0)
MIN_COUNT = 20  # a band with fewer values: median 0, spread 1


@njit(cache=True, inline="always")
def _level(x, alpha):
    """``x`` scaled by ``alpha`` to a byte as ``cv2.convertScaleAbs`` does: float32,
    rounded half to even, saturated."""
    y = abs(x * alpha)
    if not y < np.float32(255.0):  # (and NaN, as OpenCV)
        return 255
    # rounded half to even by the float32 addition itself (exact below 2**23; faster than
    # np.rint, a library call per pixel)
    return np.int64((y + np.float32(8388608.0)) - np.float32(8388608.0))


@njit(cache=True, inline="always")
def _alpha(top):
    return np.float32(255.0 / max(float(top), 1e-6))


@njit(cache=True)
def _band_kernel(bright, edge, inside, cuts_b, cuts_e, depth, nd):
    h, w = bright.shape
    tb = np.float32(-np.inf)
    te = np.float32(-np.inf)
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            if inside[i, j]:
                tb = max(tb, bright[i, j])
                te = max(te, edge[i, j])
    ab, ae = _alpha(tb), _alpha(te)
    cb = np.zeros(256, np.int64)
    ce = np.zeros(256, np.int64)
    n = 0
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            if inside[i, j]:
                cb[_level(bright[i, j], ab)] += 1
                ce[_level(edge[i, j], ae)] += 1
                n += 1
    lut_b = _quantile_lut(cb, n, cuts_b)
    lut_e = _quantile_lut(ce, n, cuts_e)
    ne = cuts_e.size + 1
    out = np.empty((h, w), np.int32)
    for i in range(h):
        for j in range(w):
            out[i, j] = (lut_b[_level(bright[i, j], ab)] * ne
                         + lut_e[_level(edge[i, j], ae)]) * nd + depth[i]
    return out


@njit(cache=True)
def _quantile_lut(counts, n_sub, cuts):
    """The band of each of the 256 levels: how many of the quantiles ``cuts`` its
    cumulative share of the ``n_sub`` pixels reaches (``np.searchsorted(cuts, cdf,
    side="right")``)."""
    lut = np.empty(256, np.int32)
    c = 0
    for v in range(256):
        c += counts[v]
        f = c / max(n_sub, 1)
        k = 0
        while k < cuts.size and cuts[k] <= f:
            k += 1
        lut[v] = k
    return lut


_CUTS: dict = {}


def _cuts(n: int) -> np.ndarray:
    if n not in _CUTS:
        _CUTS[n] = np.linspace(0.0, 1.0, n + 1)[1:-1].copy()
    return _CUTS[n]


def band_index(bright: np.ndarray, edge: np.ndarray, inside: np.ndarray, nb: int, ne: int,
               depth: np.ndarray, nd: int) -> np.ndarray:
    """Band of every pixel (int32): (brightness quantile band (``nb``) × edge quantile
    band (``ne``)) × ``nd`` + ``depth`` (per row, 0 … nd − 1): equal-count quantiles of the
    pixels of the sub-grid ``inside``, on 256 levels of each map (the maximum over the
    sub-grid, at least 1e-6, is level 255)."""
    return _band_kernel(bright, edge, inside, _cuts(nb), _cuts(ne), depth.astype(np.int32), nd)


@njit(cache=True)
def _half_bin(h: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Per row of the histograms ``h``: the first bin where the cumulative count reaches
    half of ``cnt`` (0 for an empty row)."""
    n, m = h.shape
    out = np.zeros(n, np.int64)
    for b in range(n):
        half = 0.5 * cnt[b]
        c = 0
        for k in range(m):
            c += h[b, k]
            if c >= half:
                out[b] = k
                break
    return out


@njit(cache=True)
def band_stats(d: np.ndarray, inside: np.ndarray, idx: np.ndarray, n: int, floor: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 × MAD (at least ``floor``) of ``d`` (1 − ρ, in [0, 2]) in each
    of the ``n`` bands ``idx`` over the sub-grid ``inside`` (histograms of ``DQ`` bins;
    bands with < ``MIN_COUNT`` values: 0 and 1); float32 (n,) each."""
    h, w = d.shape
    hist = np.zeros((n, DQ), np.int32)
    cnt = np.zeros(n, np.int64)
    half_scale = np.float32(0.5)
    dq = np.float32(DQ)
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            if inside[i, j]:
                v = max(d[i, j], np.float32(0.0))
                k = min(max(int(np.sqrt(v * half_scale) * dq), 0), DQ - 1)
                hist[idx[i, j], k] += 1
                cnt[idx[i, j]] += 1
    mi = _half_bin(hist, cnt)
    med = np.empty(n, np.float32)
    for b in range(n):
        med[b] = np.float32(2.0 * ((mi[b] + 0.5) / DQ) ** 2)
    hist[:, :] = 0
    dev_scale = np.float32(DQ / 0.5)
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            if inside[i, j]:
                b = idx[i, j]
                k = min(max(int(abs(d[i, j] - med[b]) * dev_scale), 0), DQ - 1)
                hist[b, k] += 1
    md = _half_bin(hist, cnt)
    sig = np.empty(n, np.float32)
    for b in range(n):
        sig[b] = np.float32(max(1.4826 * ((md[b] + 0.5) * (0.5 / DQ)), floor))
        if cnt[b] < MIN_COUNT:
            med[b], sig[b] = 0.0, 1.0
    return med, sig


__all__ = ["DQ", "MIN_COUNT", "band_index", "band_stats"]
