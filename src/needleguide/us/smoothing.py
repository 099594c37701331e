"""The smoothed impedance maps of the B-mode imager (``USImager._sample``): a separable
Gaussian over the beam domain (range along a line, lateral across lines), as
``cv2.GaussianBlur`` with ``BORDER_REFLECT_101``, but on all the numba threads (OpenCV
runs a frame this size on one) and for two maps in one pass: the impedance and the
difference of the impedance one elevation step either side (the out-of-plane gradient),
whose difference it takes on the fly."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
from numba import njit, prange


@lru_cache(maxsize=32)
def gaussian_taps(sigma: float) -> np.ndarray:
    """float32 taps of a unit-sum Gaussian of ``sigma`` samples, to ±3σ (odd length,
    symmetric; cached per σ: do not write to them)."""
    n = 2 * int(math.ceil(3.0 * sigma)) + 1
    return cv2.getGaussianKernel(n, sigma, ktype=cv2.CV_32F).ravel()


@njit(cache=True, inline="always")
def _reflect101(i, n):
    """Index ``i`` folded into 0 … n − 1 as OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh)."""
    if n == 1:
        return 0
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


@njit(cache=True, inline="always")
def _range_pass(x, kern, h, out):
    """``out`` = ``x`` (N,) convolved with the symmetric ``kern`` (2h + 1 taps), borders
    reflected: the taps ±t summed before their product (half the multiplications, tap
    pair by tap pair: the inner loops over range vectorise)."""
    N = x.shape[0]
    c0 = kern[h]
    for k in range(N):
        out[k] = c0 * x[k]
    for t in range(1, h + 1):
        c = kern[h + t]
        k0 = min(t, N)
        k1 = max(N - t, k0)
        # (slices: no negative-index checks, which keep the loops scalar)
        xp, xm, o = x[k0 + t:k1 + t], x[k0 - t:k1 - t], out[k0:k1]
        for i in range(k1 - k0):
            o[i] += c * (xp[i] + xm[i])
        for k in range(0, k0):
            out[k] += c * (x[_reflect101(k + t, N)] + x[_reflect101(k - t, N)])
        for k in range(k1, N):
            out[k] += c * (x[_reflect101(k + t, N)] + x[_reflect101(k - t, N)])


@njit(cache=True, inline="always")
def _lines_pass(x, l, kern, h, out):
    """``out`` = line ``l`` of ``x`` (L, N) convolved across the lines with the symmetric
    ``kern`` (2h + 1 taps), borders reflected."""
    L, N = x.shape
    c0 = kern[h]
    y = x[l]
    for k in range(N):
        out[k] = c0 * y[k]
    for t in range(1, h + 1):
        c = kern[h + t]
        yp, ym = x[_reflect101(l + t, L)], x[_reflect101(l - t, L)]
        for k in range(N):
            out[k] += c * (yp[k] + ym[k])


@njit(cache=True, parallel=True, fastmath=True)
def smooth_pair(a, p, m, k_range, k_lines, out_a, out_d):
    """``out_a`` = G ∗ ``a`` and ``out_d`` = G ∗ (``p`` − ``m``), all (L, N) float32 (L
    lines × N range samples); G: ``k_range`` taps along each line times ``k_lines`` taps
    across the lines (odd lengths, float32), the borders reflected (101)."""
    L, N = a.shape
    hr = k_range.shape[0] // 2
    hl = k_lines.shape[0] // 2
    ta = np.empty((L, N), np.float32)
    td = np.empty((L, N), np.float32)
    for l in prange(L):
        d = out_d[l]  # (scratch: p − m)
        xp, xm = p[l], m[l]
        for k in range(N):
            d[k] = xp[k] - xm[k]
        _range_pass(a[l], k_range, hr, ta[l])
        _range_pass(d, k_range, hr, td[l])
    for l in prange(L):
        _lines_pass(ta, l, k_lines, hl, out_a[l])
        _lines_pass(td, l, k_lines, hl, out_d[l])


__all__ = ["gaussian_taps", "smooth_pair"]
