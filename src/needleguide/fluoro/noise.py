"""Quantum noise: Poisson counts from the mean absorbed quanta per pixel, reproducibly.

Random numbers come from a counter-based hash (splitmix64) of (seed, frame index, pixel
index), so a frame's noise depends only on those three numbers — same seed, same pixels,
whatever the thread count or the order frames are made in. Pixels with a mean of at least
``GAUSS_MIN`` quanta get the Gaussian limit of the Poisson law, N = λ + √λ·z, with z an
Irwin–Hall(4) deviate (sum of four 16-bit uniforms, rescaled to unit variance; tails cut
at ±3.46σ); pixels below get an exact Poisson draw by inversion. Serial on purpose: a
parallel launch costs more than the 1–2 ms of work when the CPU is shared.
"""

from __future__ import annotations

import numba as nb
import numpy as np

GAUSS_MIN = 10.0
_SQRT3 = np.float32(np.sqrt(3.0))


@nb.njit(cache=True, inline="always")
def _splitmix64(x):  # pragma: no cover - jit
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = x
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(
        0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(
        0xFFFFFFFFFFFFFFFF)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True, fastmath=True)
def _poisson_counts(mean, key, out):  # pragma: no cover - jit
    n = mean.size
    m = mean.ravel()
    o = out.ravel()
    for i in range(n):
        lam = m[i]
        h = _splitmix64(key ^ np.uint64(i) * np.uint64(0xD1B54A32D192ED03))
        if lam >= GAUSS_MIN:
            s = np.float32((h & np.uint64(0xFFFF)) + ((h >> np.uint64(16)) & np.uint64(0xFFFF))
                           + ((h >> np.uint64(32)) & np.uint64(0xFFFF))
                           + (h >> np.uint64(48)))
            z = (s / np.float32(65535.0) - np.float32(2.0)) * _SQRT3
            o[i] = lam + np.sqrt(lam) * z
        else:
            # inversion: smallest k with CDF(k) >= u
            u = (np.float64(h >> np.uint64(11)) + 0.5) / 9007199254740992.0
            p = np.exp(-np.float64(lam))
            c = p
            k = 0
            while u > c and k < 200:
                k += 1
                p *= lam / k
                c += p
            o[i] = k


def poisson_counts(mean: np.ndarray, seed: int, frame_index: int) -> np.ndarray:
    """Poisson-distributed counts (float32, shape of ``mean``) for mean quanta ``mean``,
    reproducible from (``seed``, ``frame_index``)."""
    mean = np.ascontiguousarray(mean, dtype=np.float32)
    key = np.uint64((int(seed) * 0x9E3779B1 + int(frame_index) * 0x85EBCA77 + 1)
                    & 0xFFFFFFFFFFFFFFFF)
    out = np.empty_like(mean)
    _poisson_counts(mean, key, out)
    return out
