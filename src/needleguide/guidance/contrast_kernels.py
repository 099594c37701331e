"""Numba kernels of the contrast analyser (:mod:`.contrast_features`, :mod:`.contrast_line`,
:mod:`.contrast_timecourse`): medians, the z map with its robust σ, the hysteresis
threshold (seeded region growing), the per-orientation ridge normalisation, per-label
extrema and masked sums.

Every kernel reproduces the numpy / scipy operations it replaces bit for bit (the same
float32 steps, numpy's median of float32 data, numpy's pairwise summation, the 4-connected
components of ``scipy.ndimage.label``), so the analyser's decisions do not change;
tests/test_guidance_contrast.py checks each against that reference. Pixel units
throughout (the caller converts to mm).
"""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit

from needleguide.guidance.needle_kernels import pairwise_sum

_F32_2 = np.float32(2.0)


def median32(a: np.ndarray) -> float:
    """``float(np.median(a))`` of a 1-D float32 array without NaN, from one single-kth
    ``np.partition`` (numpy's vectorised selection; ``np.median`` partitions at two or
    three kth at once, 8x slower): the middle value, or the float32 mean of the two
    middle values (the lower one is the largest of the lower half). NaN when empty."""
    n = a.size
    if n == 0:
        return float("nan")
    k = n // 2
    p = np.partition(a, k)
    hi = p[k]
    if n % 2 == 1:
        return float(hi)
    return float((p[:k].max() + hi) / _F32_2)


@njit(cache=True)
def _gather_sub(img, valid, buf):
    """``img[::2, ::2][valid[::2, ::2]]`` (``valid`` None: all) into ``buf``; count."""
    h, w = img.shape
    n = 0
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            if valid is None or valid[i, j]:
                buf[n] = img[i, j]
                n += 1
    return n


@njit(cache=True)
def _zr_sub(sm, med, noise, valid, buf):
    """``((sm - med) / noise)[::2, ::2][valid[::2, ::2]]`` (float32) into ``buf``; count."""
    h, w = sm.shape
    n = 0
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            if valid is None or valid[i, j]:
                d = sm[i, j] - med
                buf[n] = d if noise is None else d / noise[i, j]
                n += 1
    return n


@njit(cache=True)
def _z_full(sm, med, noise, s, z):
    """z = ((sm − med) / noise) / s (float32 steps, as the numpy expressions)."""
    h, w = sm.shape
    for i in range(h):
        for j in range(w):
            d = sm[i, j] - med
            if noise is not None:
                d = d / noise[i, j]
            z[i, j] = d / s


def z_map(sm: np.ndarray, noise: np.ndarray | None, valid: np.ndarray | None
          ) -> tuple[float, np.ndarray]:
    """(median m of ``sm`` on every second valid pixel, z map) of a smoothed contrast map:
    ``dev = sm − m``, ``zr = dev / noise``, ``z = zr / σ`` with σ = 1.4826·MAD(zr) + 1e-6
    over every second valid pixel — bit for bit ``frame_features``' former numpy steps."""
    buf = np.empty(((sm.shape[0] + 1) // 2) * ((sm.shape[1] + 1) // 2), np.float32)
    med = median32(buf[:_gather_sub(sm, valid, buf)])
    m32 = np.float32(med)
    v = buf[:_zr_sub(sm, m32, noise, valid, buf)]
    med2 = median32(v)
    s = 1.4826 * median32(np.abs(v - np.float32(med2))) + 1e-6
    z = np.empty(sm.shape, np.float32)
    _z_full(sm, m32, noise, np.float32(s), z)
    return med, z


@njit(cache=True)
def _grow(z, thr, seed, px2, min_area, mask):
    """Hysteresis threshold: the 4-connected regions of ``z > thr`` that hold a pixel
    ``>= seed`` and cover ≥ ``min_area`` (count · ``px2``) go into ``mask``; returns the
    bounding box (row0, row1, col0, col1, end-exclusive; row0 = -1 when none)."""
    h, w = z.shape
    vis = np.zeros((h, w), np.uint8)
    stack = np.empty(h * w, np.int32)
    pix = np.empty(h * w, np.int32)
    y0, y1, x0, x1 = h, -1, w, -1
    for i0 in range(h):
        for j0 in range(w):
            v = z[i0, j0]
            if not (v >= seed and v > thr) or vis[i0, j0]:
                continue
            vis[i0, j0] = 1
            sp, npx = 1, 0
            stack[0] = i0 * w + j0
            while sp > 0:
                sp -= 1
                q = stack[sp]
                pix[npx] = q
                npx += 1
                i, j = q // w, q % w
                if i > 0 and not vis[i - 1, j] and z[i - 1, j] > thr:
                    vis[i - 1, j] = 1
                    stack[sp] = q - w
                    sp += 1
                if i < h - 1 and not vis[i + 1, j] and z[i + 1, j] > thr:
                    vis[i + 1, j] = 1
                    stack[sp] = q + w
                    sp += 1
                if j > 0 and not vis[i, j - 1] and z[i, j - 1] > thr:
                    vis[i, j - 1] = 1
                    stack[sp] = q - 1
                    sp += 1
                if j < w - 1 and not vis[i, j + 1] and z[i, j + 1] > thr:
                    vis[i, j + 1] = 1
                    stack[sp] = q + 1
                    sp += 1
            if npx * px2 >= min_area:
                for t in range(npx):
                    i, j = pix[t] // w, pix[t] % w
                    mask[i, j] = True
                    y0, y1 = min(y0, i), max(y1, i)
                    x0, x1 = min(x0, j), max(x1, j)
    if y1 < 0:
        return -1, 0, 0, 0
    return y0, y1 + 1, x0, x1 + 1


def hysteresis(z: np.ndarray, thr: np.float32, seed: np.float32, px2: float,
               min_area: float) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """(mask, bounding box or None) of the regions of ``z > thr`` (4-connected, as
    ``ndi.label``) whose peak is ``>= seed`` and whose area (pixels · ``px2``) is ≥
    ``min_area`` — the float32 comparisons of numpy with the float thresholds."""
    mask = np.zeros(z.shape, np.bool_)
    y0, y1, x0, x1 = _grow(z, thr, seed, float(px2), float(min_area), mask)
    return mask, (None if y0 < 0 else (int(y0), int(y1), int(x0), int(x1)))


@njit(cache=True, nogil=True)
def _ridge_d(c, a, b, sub):
    """Every second pixel of d = min(c − a, c − b) (float32) into ``sub``; count."""
    h, w = c.shape
    n = 0
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            sub[n] = min(c[i, j] - a[i, j], c[i, j] - b[i, j])
            n += 1
    return n


@njit(cache=True, nogil=True)
def _ridge_max(c, a, b, med, s, best):
    """best = max(best, (min(c − a, c − b) − med) / s), float32 steps."""
    h, w = c.shape
    for i in range(h):
        for j in range(w):
            v = (min(c[i, j] - a[i, j], c[i, j] - b[i, j]) - med) / s
            if v > best[i, j]:
                best[i, j] = v


def ridge_update(c: np.ndarray, a: np.ndarray, b: np.ndarray, best: np.ndarray,
                 buf: np.ndarray) -> None:
    """One orientation of the ridge z map: d = min(c − a, c − b) (float32), its median m
    and MAD on every second pixel, ``best = max(best, (d − m) / (1.4826·MAD + 1e-9))``;
    ``a``, ``b``: ``c`` shifted to either side; ``buf``: scratch ≥ the subsampled size."""
    v = buf[:_ridge_d(c, a, b, buf)]
    med = np.float32(median32(v))
    s = np.float32(1.4826 * median32(np.abs(v - med)) + 1e-9)
    _ridge_max(c, a, b, med, s, best)


@njit(cache=True)
def label_max_min(lab, n, zv, dist):
    """Per label 1..n: max of ``zv`` and min of ``dist`` over its pixels (as
    ``ndi.maximum`` / ``ndi.minimum``); ``dist`` may be None (then the min is 0)."""
    mx = np.full(n + 1, -np.inf, np.float32)
    mn = np.full(n + 1, np.inf)
    h, w = lab.shape
    for i in range(h):
        for j in range(w):
            k = lab[i, j]
            if k > 0:
                if zv[i, j] > mx[k]:
                    mx[k] = zv[i, j]
                if dist is not None and dist[i, j] < mn[k]:
                    mn[k] = dist[i, j]
    if dist is None:
        mn[:] = 0.0
    return mx[1:], mn[1:]


@njit(cache=True)
def _runs(mask, y0, y1, x0, x1):
    h, w = mask.shape
    out = np.empty(((y1 - y0) * ((x1 - x0) // 2 + 1), 2), np.int64)
    n = 0
    for i in range(y0, y1):
        j = x0
        while j < x1:
            if mask[i, j]:
                j1 = j + 1
                while j1 < x1 and mask[i, j1]:
                    j1 += 1
                out[n, 0] = i * w + j
                out[n, 1] = j1 - j
                n += 1
                j = j1
            else:
                j += 1
    return out[:n].copy()


def region_runs(mask: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """The True pixels of ``mask`` (False outside ``box``: row0, row1, col0, col1; None:
    empty) as row runs in raster order: (n, 2) int64 of (linear start index, length)."""
    if box is None:
        return np.zeros((0, 2), np.int64)
    return _runs(mask, box[0], box[1], box[2], box[3])


@njit(cache=True)
def _runs_sum(flat, runs, buf):
    n = 0
    for r in range(runs.shape[0]):
        s, ln = runs[r, 0], runs[r, 1]
        buf[n:n + ln] = flat[s:s + ln]
        n += ln
    if n == 0:
        return 0.0
    return float(pairwise_sum(buf, 0, n))


def runs_sum(img: np.ndarray, runs: np.ndarray, buf: np.ndarray) -> float:
    """``float(img[mask].sum())`` for the float32, C-contiguous ``img`` and the pixels
    of ``mask`` as row runs (:func:`region_runs`): numpy's pairwise sum of them in raster
    order; ``buf``: float32 scratch of at least their count."""
    return _runs_sum(img.reshape(-1), runs, buf)


def row_runs(kernel: np.ndarray) -> np.ndarray | None:
    """Half-widths (row offset −r … r) of a square, odd, symmetric structuring element
    whose rows are centred contiguous runs that never widen away from the centre row
    (``cv2.MORPH_ELLIPSE``, ``MORPH_RECT``, ``MORPH_CROSS``); None for any other."""
    n = kernel.shape[0]
    if kernel.shape != (n, n) or n % 2 == 0:
        return None
    c = n // 2
    hw = np.full(n, -1, np.int64)
    for i, row in enumerate(kernel):
        nz = np.flatnonzero(row)
        if nz.size == 0 or np.any(np.diff(nz) != 1) or nz[0] + nz[-1] != 2 * c:
            return None
        hw[i] = c - nz[0]
    if np.any(hw != hw[::-1]) or np.any(np.diff(hw[:c + 1]) < 0):
        return None
    return hw


@njit(cache=True)
def grow_dilated(union, mask, y0, y1, x0, x1, hw, roi):
    """``roi = dilate(union | mask)`` given ``roi = dilate(union)`` (structuring element
    of half-widths ``hw``, :func:`row_runs`), and ``union |= mask``; ``mask`` is False
    outside rows y0:y1, cols x0:x1. dilate(S) = S ∪ the element stamped on the pixels of
    S with a 4-neighbour outside S (each other pixel's stamp is covered by its
    neighbours'), and the pixels of ``union`` are already stamped, so only the new
    boundary pixels are. Returns whether ``roi`` grew."""
    h, w = union.shape
    r = (hw.size - 1) // 2
    grew = False
    for i in range(y0, y1):
        for j in range(x0, x1):
            if not mask[i, j] or union[i, j]:
                continue
            if not roi[i, j]:
                roi[i, j] = True
                grew = True
            inner = (i > 0 and (union[i - 1, j] or mask[i - 1, j])) and \
                (i < h - 1 and (union[i + 1, j] or mask[i + 1, j])) and \
                (j > 0 and (union[i, j - 1] or mask[i, j - 1])) and \
                (j < w - 1 and (union[i, j + 1] or mask[i, j + 1]))
            if inner:
                continue
            for dy in range(-r, r + 1):
                ii = i + dy
                if ii < 0 or ii >= h:
                    continue
                q = hw[dy + r]
                for jj in range(max(j - q, 0), min(j + q + 1, w)):
                    if not roi[ii, jj]:
                        roi[ii, jj] = True
                        grew = True
    for i in range(y0, y1):
        for j in range(x0, x1):
            if mask[i, j]:
                union[i, j] = True
    return grew


def dilate_mask(mask: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``cv2.dilate(mask, kernel) > 0`` (bool, full image; symmetric odd ``kernel``),
    computed on the mask's bounding box grown by the kernel radius (the same pixels)."""
    out = np.zeros(mask.shape, bool)
    box = bbox(mask)
    if box is None:
        return out
    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    h, w = mask.shape
    y0, y1 = max(box[0] - ry, 0), min(box[1] + ry, h)
    x0, x1 = max(box[2] - rx, 0), min(box[3] + rx, w)
    out[y0:y1, x0:x1] = cv2.dilate(mask[y0:y1, x0:x1].astype(np.uint8), kernel) > 0
    return out


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(row0, row1, col0, col1), end-exclusive, of the True pixels; None if none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
