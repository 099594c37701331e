"""Fused numba kernels of the needle analyser's candidate stage: Hessian ridge strength
(second derivatives exactly as ``cv2.Sobel(ksize=3)`` of the Gaussian-blurred image) with
the local-noise division and the positive-pixel compaction in one pass, the derivatives
at the chosen pixels, the Hough accumulator's strongest cells, and the line refit of one
accumulator peak.

Every kernel reproduces the numpy / OpenCV operations it replaces bit for bit (same
float32 / float64 steps, numpy's pairwise summation), so the detector's decisions do not
change; tests/test_guidance_needle.py checks each against that reference. (The Sobel
derivatives match OpenCV's vector loop, i.e. every column of images whose width is a
multiple of 16 (512² fluoroscopy, 256² half-resolution US); in the last few columns of
other widths OpenCV's scalar tail rounds differently, by float32 rounding.)"""

from __future__ import annotations

import math
import threading

import numpy as np
from numba import njit

_HALF_PI32 = np.float32(np.pi / 2)
_TLS = threading.local()
_PI32 = np.float32(np.pi)


@njit(cache=True, inline="always")
def _d2(g, i, j):
    """(Ixx, Iyy, Ixy) at (i, j): ``cv2.Sobel`` 3×3 (row pass, then column pass, float32,
    BORDER_REFLECT_101)."""
    h, w = g.shape
    im = i - 1 if i > 0 else 1
    ip = i + 1 if i < h - 1 else h - 2
    jm = j - 1 if j > 0 else 1
    jp = j + 1 if j < w - 1 else w - 2
    two = np.float32(2.0)
    s0 = g[im, jm] + g[im, jp]
    s1 = g[i, jm] + g[i, jp]
    s2 = g[ip, jm] + g[ip, jp]
    xx = ((s0 - two * g[im, j]) + (s2 - two * g[ip, j])) + two * (s1 - two * g[i, j])
    yy = ((s0 + two * g[im, j]) + (s2 + two * g[ip, j])) - two * (s1 + two * g[i, j])
    xy = (g[ip, jp] - g[ip, jm]) - (g[im, jp] - g[im, jm])
    return xx, yy, xy


@njit(cache=True, fastmath=True)
def _ridge_px(a, b, c, s2):
    """Bright-ridge strength ``-λ_min·σ²`` of one pixel (0 unless an elongated bright
    ridge); float64 inside, as the former whole-image kernel."""
    m = 0.5 * (a + b)
    d = math.sqrt(0.25 * (a - b) * (a - b) + c * c)
    lmin = m - d
    ok = (lmin < 0.0) & (-lmin > 2.0 * abs(m + d))
    return -lmin * s2 if ok else 0.0 * s2


@njit(cache=True)
def _ridge_row(g, i, s2, xx, yy, xy, r):
    """Row ``i`` of the ridge strength of ``g`` into ``r`` (float32), via the Sobel
    derivatives (BORDER_REFLECT_101) in the row buffers xx, yy, xy."""
    h, w = g.shape
    rm = g[i - 1 if i > 0 else 1]
    r0 = g[i]
    rp = g[i + 1 if i < h - 1 else h - 2]
    two = np.float32(2.0)
    for j in range(1, w - 1):
        s0 = rm[j - 1] + rm[j + 1]
        s1 = r0[j - 1] + r0[j + 1]
        sp = rp[j - 1] + rp[j + 1]
        xx[j] = ((s0 - two * rm[j]) + (sp - two * rp[j])) + two * (s1 - two * r0[j])
        yy[j] = ((s0 + two * rm[j]) + (sp + two * rp[j])) - two * (s1 + two * r0[j])
        xy[j] = (rp[j + 1] - rp[j - 1]) - (rm[j + 1] - rm[j - 1])
    for j in (0, w - 1):
        xx[j], yy[j], xy[j] = _d2(g, i, j)
    for j in range(w):
        r[j] = np.float32(_ridge_px(xx[j], yy[j], xy[j], s2))


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A per-thread scratch array, reused from call to call: large fresh arrays cost
    page faults on every frame (the allocator hands big blocks back to the system)."""
    bufs = _TLS.__dict__.setdefault("bufs", {})
    size = int(np.prod(shape))
    b = bufs.get(name)
    if b is None or b.size < size or b.dtype != np.dtype(dtype):
        b = bufs[name] = np.empty(size, dtype)
    return b[:size].reshape(shape)


def ridge_positive(g1: np.ndarray, s1: np.float32, g2: np.ndarray, s2: np.float32,
                   two_scales: bool, noise: np.ndarray, use_noise: bool, mask: np.ndarray,
                   use_mask: bool, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (ascending) and values (float32) of the pixels with a positive ridge
    strength: ridge of the blurred image ``g1`` (σ² = ``s1``), divided by ``noise`` if
    ``use_noise``, the larger of it and the ridge of ``g2`` (σ² = ``s2``) if
    ``two_scales``, only where ``mask`` if ``use_mask`` (pass any 2-D arrays when
    unused). With ``k``: only the ``k`` strongest (``np.argpartition`` of those, in its
    order, as before)."""
    n = g1.size + 1
    idx_b, val_b = scratch("ridge_idx", (n,), np.int64), scratch("ridge_val", (n,), np.float32)
    m = _ridge_positive(g1, s1, g2, s2, two_scales, noise, use_noise, mask, use_mask,
                        idx_b, val_b)
    idx, val = idx_b[:m], val_b[:m]
    if k is not None and m > k:
        top = np.argpartition(val, -k)[-k:]
        return idx[top], val[top]
    return idx.copy(), val.copy()


@njit(cache=True, error_model="numpy")  # (no zero-division branch: the division vectorises)
def _ridge_positive(g1, s1, g2, s2, two_scales, noise, use_noise, mask, use_mask, idx, val):
    """One pass over the rows of :func:`ridge_positive` into the buffers; the count."""
    h, w = g1.shape
    xx, yy, xy = np.empty(w, np.float32), np.empty(w, np.float32), np.empty(w, np.float32)
    r = np.empty(w, np.float32)
    r2 = np.empty(w, np.float32)
    n = 0
    for i in range(h):
        _ridge_row(g1, i, s1, xx, yy, xy, r)
        if use_noise:
            nr = noise[i]
            for j in range(w):
                r[j] = r[j] / nr[j]
        if two_scales:
            _ridge_row(g2, i, s2, xx, yy, xy, r2)
            for j in range(w):
                r[j] = r2[j] if r2[j] > r[j] else r[j]
        base = i * w
        for j in range(w):  # branch-free compaction
            idx[n] = base + j
            val[n] = r[j]
            ok = r[j] > 0
            if use_mask:
                ok = ok & (mask[i, j] != 0)
            n += 1 if ok else 0
    return n


@njit(cache=True)
def hessian_at(g, s2, idx):
    """(Ixx, Iyy, Ixy) (float32) and the ridge strength (σ² = ``s2``) at flat indices
    (cheaper than keeping the derivatives of every positive pixel)."""
    w = g.shape[1]
    n = idx.shape[0]
    xx = np.empty(n, np.float32)
    yy = np.empty(n, np.float32)
    xy = np.empty(n, np.float32)
    r = np.empty(n, np.float32)
    for k in range(n):
        i, j = idx[k] // w, idx[k] % w
        a, b, c = _d2(g, i, j)
        xx[k], yy[k], xy[k] = a, b, c
        r[k] = np.float32(_ridge_px(a, b, c, s2))
    return xx, yy, xy, r


def top_cells(acc: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices and values of the ``k`` strongest accumulator cells > 0
    (``np.argpartition`` of the positive cells in index order, as before)."""
    n = acc.size + 1
    idx_b, val_b = scratch("cells_idx", (n,), np.int64), scratch("cells_val", (n,), acc.dtype)
    m = _positive_cells(acc.ravel(), idx_b, val_b)
    if m == 0:
        return idx_b[:0].copy(), val_b[:0].copy()
    k = min(m, k)
    top = np.argpartition(val_b[:m], -k)[-k:]
    return idx_b[:m][top], val_b[:m][top]


def positive_cells(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (ascending) and values of the accumulator cells > 0."""
    n = acc.size + 1
    idx_b, val_b = scratch("cells_idx", (n,), np.int64), scratch("cells_val", (n,), acc.dtype)
    m = _positive_cells(acc.ravel(), idx_b, val_b)
    return idx_b[:m].copy(), val_b[:m].copy()


@njit(cache=True)
def _positive_cells(flat, idx, val):
    n = 0
    for i in range(flat.shape[0]):  # branch-free compaction
        idx[n] = i
        val[n] = flat[i]
        n += 1 if flat[i] > 0 else 0
    return n


@njit(cache=True)
def _pw_leaf(a, lo, n):
    if n < 8:
        res = a[lo]
        for i in range(lo + 1, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    m = n - n % 8
    while i < m:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def pairwise_sum(a, lo, n):
    """``np.sum(a[lo:lo + n])`` (n ≥ 1) with numpy's pairwise summation (blocks of 128,
    8 accumulators, halves rounded to multiples of 8), bit for bit; iterative (a cached
    recursive numba function crashes on reload)."""
    if n <= 128:
        return _pw_leaf(a, lo, n)
    st_lo = np.empty(64, np.int64)
    st_n = np.empty(64, np.int64)
    st_s = np.empty(64, np.int64)
    vals = np.empty(64, a.dtype)
    sp, vp = 0, 0
    st_lo[0], st_n[0], st_s[0] = lo, n, 0
    sp = 1
    while sp > 0:
        k = sp - 1
        m = st_n[k]
        if m <= 128:
            vals[vp] = _pw_leaf(a, st_lo[k], m)
            vp += 1
            sp -= 1
            continue
        n2 = m // 2
        n2 -= n2 % 8
        if st_s[k] == 0:  # left half first
            st_s[k] = 1
            st_lo[sp], st_n[sp], st_s[sp] = st_lo[k], n2, 0
            sp += 1
        elif st_s[k] == 1:
            st_s[k] = 2
            st_lo[sp], st_n[sp], st_s[sp] = st_lo[k] + n2, m - n2, 0
            sp += 1
        else:  # both halves done: left + right
            vals[vp - 2] = vals[vp - 2] + vals[vp - 1]
            vp -= 1
            sp -= 1
    return vals[0]


@njit(cache=True)
def near_fit(xs, ys, ws, ths, cos_a, sin_a, rho, a, gate, sc, off):
    """Refit of one Hough line (normal angle ``a``, float32; its cos / sin; offset
    ``rho``): the candidates within 1.5 px of it whose ridge normal ``ths`` (float32) is
    within ``gate`` rad, at full resolution (``sc``·x + ``off``), weighted total least
    squares as ``needle_lines.fit_line``. Returns (count, centroid (2,), covariance
    (2, 2)); the direction is the covariance's major eigenvector."""
    n = xs.shape[0]
    sel = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if abs(xs[i] * cos_a + ys[i] * sin_a - rho) <= 1.5:
            d = ((ths[i] - a) + _HALF_PI32) % _PI32 - _HALF_PI32
            if abs(d) <= gate:
                sel[m] = i
                m += 1
    c = np.zeros(2)
    cov = np.zeros((2, 2))
    if m < 5:
        return m, c, cov
    w = np.empty(m, ws.dtype)
    for k in range(m):
        w[k] = ws[sel[k]]
    tot = pairwise_sum(w, 0, m)
    for k in range(m):
        w[k] = w[k] / tot
    x = np.empty(m)
    y = np.empty(m)
    for k in range(m):
        x[k] = sc * xs[sel[k]] + off
        y[k] = sc * ys[sel[k]] + off
    p = np.empty(m)
    for k in range(m):
        p[k] = w[k] * x[k]
    c[0] = pairwise_sum(p, 0, m)
    for k in range(m):
        p[k] = w[k] * y[k]
    c[1] = pairwise_sum(p, 0, m)
    for k in range(m):
        x[k] = x[k] - c[0]
        y[k] = y[k] - c[1]
    for k in range(m):
        p[k] = w[k] * x[k] * x[k]
    cov[0, 0] = pairwise_sum(p, 0, m)
    for k in range(m):
        p[k] = w[k] * x[k] * y[k]
    cov[0, 1] = cov[1, 0] = pairwise_sum(p, 0, m)
    for k in range(m):
        p[k] = w[k] * y[k] * y[k]
    cov[1, 1] = pairwise_sum(p, 0, m)
    return m, c, cov
