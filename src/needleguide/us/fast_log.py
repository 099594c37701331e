"""A base-10 logarithm over float32 rows that the compiler vectorises (``math.log10`` is a
scalar call per sample here: numba has no vector math library without Intel's SVML), for
the log compression of every beam sample (``kernels.psf_lateral_detect``)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_SQRT2 = np.float32(math.sqrt(2.0))
_LN2 = np.float32(math.log(2.0))
_INV_LN10 = np.float32(1.0 / math.log(10.0))


@njit(cache=True, inline="always")
def log10_row(x, out):
    """``out[k]`` = log10(``x[k]``) for a contiguous float32 row of positive normal
    numbers, relative error ≲ 1e-7 (float32 rounding): the exponent and the mantissa m
    from the bits, m in [√½, √2), ln m = 2·atanh(s), s = (m − 1)/(m + 1) (|s| ≤ 0.172),
    to the s⁷ term (truncation < 3e-8)."""
    n = x.shape[0]
    bits = x.view(np.int32)
    mb = np.empty(n, np.int32)
    for k in range(n):
        mb[k] = (bits[k] & 0x007FFFFF) | 0x3F800000  # the mantissa as a number in [1, 2)
    m = mb.view(np.float32)
    one = np.float32(1.0)
    for k in range(n):
        ex = np.float32(((bits[k] >> 23) & 0xFF) - 127)
        mk = m[k]
        big = mk > _SQRT2
        mk = mk * np.float32(0.5) if big else mk
        ex = ex + one if big else ex
        s = (mk - one) / (mk + one)
        s2 = s * s
        ln = np.float32(2.0) * s * (one + s2 * (np.float32(1.0 / 3.0) + s2 * (
            np.float32(0.2) + s2 * np.float32(1.0 / 7.0))))
        out[k] = (ex * _LN2 + ln) * _INV_LN10


__all__ = ["log10_row"]
