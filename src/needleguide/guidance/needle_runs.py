"""1-D numba kernels on the profiles along a candidate line: the longest run of
significant contrast, the standard deviation of a float32 profile, the median and MAD of
the profile away from the run, and the strong steps down (tip candidates). Each
reproduces the numpy / scipy code it replaced bit for bit (tests/test_guidance_needle.py)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from needleguide.guidance.needle_kernels import pairwise_sum


@njit(cache=True)
def longest_run(ok, gap):
    """(start, end) indices (inclusive) of the longest run of True allowing gaps of up to
    ``gap`` False samples (the first of equally long runs); (-1, -1) if none."""
    best_s, best_e = -1, -1
    s, last = -1, -1
    for j in range(ok.shape[0]):
        if ok[j]:
            if s >= 0 and j - last > gap + 1:
                if best_s < 0 or last - s > best_e - best_s:
                    best_s, best_e = s, last
                s = j
            elif s < 0:
                s = j
            last = j
    if s >= 0 and (best_s < 0 or last - s > best_e - best_s):
        best_s, best_e = s, last
    return best_s, best_e


@njit(cache=True)
def _median32(a):
    """``np.median`` of a float32 array (float32: the mean of the two middle values is
    taken in float32, as numpy does); ``a`` is reordered."""
    n = a.shape[0]
    k = n // 2
    p = np.partition(a, k)
    if n % 2 == 1:
        return p[k]
    lo = p[0]
    for i in range(1, k):
        lo = max(lo, p[i])
    return np.float32((lo + p[k]) / 2)


@njit(cache=True)
def median_mad_outside(a, lo, hi):
    """Median and median absolute deviation (float32, as ``np.median``) of ``a`` outside
    ``[lo, hi)`` (a[:lo] and a[hi:])."""
    n = a.shape[0]
    hi = min(hi, n)
    m = lo + max(n - hi, 0)
    b = np.empty(m, a.dtype)
    b[:lo] = a[:lo]
    b[lo:] = a[hi:]
    med = _median32(b.copy())
    for i in range(m):
        b[i] = abs(b[i] - med)
    return med, _median32(b)


@njit(cache=True)
def step_candidates(t, con, s_end, e_end, wdw, tip_first, min_step, has_min):
    """Kernel of ``needle_lines.step_candidates`` (``has_min``: ``min_step`` given): line
    parameters of the step-down maxima, proximal to distal."""
    n = con.shape[0]
    c = con[::-1] if tip_first else con
    s, e = (n - 1 - s_end, n - 1 - e_end) if tip_first else (s_end, e_end)
    cs = np.empty(n + 1)
    cs[0] = 0.0
    acc = 0.0
    for i in range(n):
        acc += np.float64(c[i])
        cs[i + 1] = acc
    k0, k1 = max(s - wdw, wdw), min(e + wdw, n - wdw) + 1
    if k1 <= k0:
        k = min(max(s, 1), n - 1)
        out = np.empty(1)
        out[0] = t[n - 1 - k] if tip_first else t[k]
        return out
    nk = k1 - k0
    resp = np.empty(nk)
    for q in range(nk):
        k = k0 + q
        lo = min(max(k - wdw, 0), n)
        hi = min(max(k + wdw, 0), n)
        resp[q] = (cs[k] - cs[lo]) / max(k - lo, 1) - (cs[hi] - cs[k]) / max(hi - k, 1)
    top = resp.max()
    floor = 0.4 * top if not has_min else min(min_step, 0.4 * top)
    size = max(3, wdw)  # scipy maximum_filter1d(size, mode="nearest") window
    b0 = size // 2
    ms = np.empty(nk, np.int64)
    nm = 0
    for q in range(nk):
        mx = resp[min(max(q - b0, 0), nk - 1)]
        for j in range(q - b0 + 1, q - b0 + size):
            mx = max(mx, resp[min(max(j, 0), nk - 1)])
        if resp[q] >= mx and resp[q] >= floor and resp[q] > 0:
            ms[nm] = q
            nm += 1
    if nm == 0:
        ms[0] = int(np.argmax(resp))
        nm = 1
    out = np.empty(nm)
    for r in range(nm):
        m = ms[r]
        off = 0.0
        if 0 < m < nk - 1:
            a, b, d = resp[m - 1], resp[m], resp[m + 1]
            den = a - 2 * b + d
            if den < 0:
                off = min(max(0.5 * (a - d) / den, -0.5), 0.5)
        pos = (k0 + m) - 0.5 + off  # the step lies between samples k-1 and k
        if tip_first:
            pos = n - 1 - pos
        pos = min(max(pos, 0.0), n - 1.0)
        i = int(pos)
        f = pos - i
        out[r] = t[i] + f * (t[min(i + 1, n - 1)] - t[i])
    return out


@njit(cache=True)
def std32(a):
    """``np.std`` of a 1-D float32 array (n ≥ 1), float32, bit for bit: pairwise sums,
    the mean and the variance rounded to float32."""
    n = a.shape[0]
    mean = np.float32(pairwise_sum(a, 0, n) / n)
    x = np.empty(n, np.float32)
    for i in range(n):
        d = a[i] - mean
        x[i] = d * d
    return np.float32(math.sqrt(np.float32(pairwise_sum(x, 0, n) / n)))


@njit(cache=True)
def mean32(a):
    """``a.mean()`` of a 1-D float32 array (n ≥ 1), bit for bit."""
    return np.float32(pairwise_sum(a, 0, a.shape[0]) / a.shape[0])


@njit(cache=True)
def side_contrast(pr):
    """From the profiles (rows: side, on-line −0.5 / 0 / +0.5, side, …): the on-line
    level (max of rows 1–3), the contrast over the brighter side, the side difference
    and its standard deviation (``np.std``)."""
    n = pr.shape[1]
    on = np.empty(n, np.float32)
    con = np.empty(n, np.float32)
    d = np.empty(n, np.float32)
    for j in range(n):
        o = max(max(pr[1, j], pr[2, j]), pr[3, j])
        on[j] = o
        con[j] = o - max(pr[0, j], pr[4, j])
        d[j] = pr[0, j] - pr[4, j]
    return on, con, d, std32(d)


@njit(cache=True)
def strong_run(con_s, thr, s1, s2, sector, gap):
    """:func:`longest_run` of ``con_s > thr`` (and, if ``sector``, both sides > 0)."""
    n = con_s.shape[0]
    ok = np.empty(n, np.bool_)
    for j in range(n):
        ok[j] = con_s[j] > thr and (not sector or (s1[j] > 0 and s2[j] > 0))
    return longest_run(ok, gap)


@njit(cache=True)
def run_extras(con_s, i0s, i1s, on, s1, s2, i0, i1):
    """float32 statistics of a measured shaft (as numpy): std and mean of ``con_s`` over
    the strong run, median of ``on`` and means of the darker / brighter side over the
    extended run."""
    cs = con_s[i0s:i1s + 1]
    m = i1 - i0 + 1
    lo = np.empty(m, np.float32)
    hi = np.empty(m, np.float32)
    for k in range(m):
        lo[k] = min(s1[i0 + k], s2[i0 + k])
        hi[k] = max(s1[i0 + k], s2[i0 + k])
    return std32(cs), mean32(cs), _median32(on[i0:i1 + 1].copy()), mean32(lo), mean32(hi)
