"""Confidence intervals for virtual-trial summaries (95 % unless told otherwise).

* Proportions: Wilson score interval (:func:`wilson`); differences of two independent
  proportions: Newcombe's hybrid score interval built from the two Wilson intervals
  (:func:`newcombe_diff`, Newcombe 1998, method 10).
* Medians, means, ratios and pooled event shares: percentile bootstrap, resampling rows
  (procedures) with replacement, ``B = 2000`` resamples from ``numpy.random.default_rng(seed)``
  with ``seed = 18`` by default (:func:`bootstrap_ci`, :func:`bootstrap_two`): the same rows
  and seed give the same interval. Resampling whole procedures keeps the events of one
  procedure together (a cluster bootstrap for event shares).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054
BOOT_B = 2000
BOOT_SEED = 18
_CHUNK = 2_000_000  # resampled values held at once

Interval = tuple[float, float]
Stat = Callable[[np.ndarray], np.ndarray]


def wilson(k: int, n: int, z: float = Z95) -> Interval | None:
    """Wilson score interval for ``k`` successes in ``n`` trials; None when ``n == 0``."""
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in 0..n (k={k}, n={n})")
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> Interval | None:
    """Interval for ``p1 - p2`` (Newcombe's hybrid score method); None if an arm is empty."""
    a, b = wilson(k1, n1, z), wilson(k2, n2, z)
    if a is None or b is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    lo = d - math.sqrt((p1 - a[0]) ** 2 + (b[1] - p2) ** 2)
    hi = d + math.sqrt((a[1] - p1) ** 2 + (p2 - b[0]) ** 2)
    return (max(-1.0, lo), min(1.0, hi))


def _resampled(data: np.ndarray, stat: Stat, b: int, rng: np.random.Generator) -> np.ndarray:
    """``b`` values of ``stat`` on resamples of the rows of ``data`` (first axis)."""
    n = len(data)
    per = max(1, _CHUNK // max(1, n * max(1, data[0].size)))
    out = []
    done = 0
    while done < b:
        m = min(per, b - done)
        idx = rng.integers(0, n, size=(m, n))
        out.append(np.asarray(stat(data[idx]), dtype=float))
        done += m
    return np.concatenate(out)


def _percentile(vals: np.ndarray, level: float) -> Interval | None:
    b = len(vals)
    vals = vals[np.isfinite(vals)]
    if len(vals) < b / 2:  # mostly undefined (e.g. empty denominators)
        return None
    a = (1 - level) / 2 * 100
    lo, hi = np.percentile(vals, [a, 100 - a])
    return (float(lo), float(hi))


def bootstrap_ci(data: Sequence | np.ndarray, stat: Stat, b: int = BOOT_B,
                 seed: int = BOOT_SEED, level: float = 0.95) -> Interval | None:
    """Percentile bootstrap interval of ``stat`` over the rows of ``data``.

    ``stat`` receives a stack of resamples, shape ``(m, n, ...)``, and returns ``m``
    values (e.g. ``lambda s: np.median(s, axis=1)``). None for an empty sample."""
    arr = np.asarray(data, dtype=float)
    if len(arr) == 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        vals = _resampled(arr, stat, b, np.random.default_rng(seed))
    return _percentile(vals, level)


def bootstrap_two(a: Sequence | np.ndarray, b_: Sequence | np.ndarray, stat: Stat,
                  combine: Callable[[np.ndarray, np.ndarray], np.ndarray],
                  b: int = BOOT_B, seed: int = BOOT_SEED,
                  level: float = 0.95) -> Interval | None:
    """Percentile bootstrap interval of ``combine(stat(A*), stat(B*))`` with the two samples
    resampled independently (e.g. a ratio of means of two arms)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b_, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return None
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        va = _resampled(x, stat, b, rng)
        vb = _resampled(y, stat, b, rng)
        vals = np.asarray(combine(va, vb), dtype=float)
    return _percentile(vals, level)


def median_stat(s: np.ndarray) -> np.ndarray:
    return np.median(s, axis=1)


def mean_stat(s: np.ndarray) -> np.ndarray:
    return np.mean(s, axis=1)


def pooled_share(s: np.ndarray) -> np.ndarray:
    """Resamples of ``(numerator, denominator)`` rows: the pooled share per resample."""
    den = s[..., 1].sum(axis=1)
    return np.where(den > 0, s[..., 0].sum(axis=1) / np.where(den > 0, den, 1), np.nan)


def stat_of(name: str) -> Stat:
    return {"median": median_stat, "mean": mean_stat, "pooled_share": pooled_share}[name]


def point(data: Sequence | np.ndarray, name: str) -> float | None:
    """The statistic ``name`` on the sample itself (None if empty or undefined)."""
    arr = np.asarray(data, dtype=float)
    if len(arr) == 0:
        return None
    v = float(stat_of(name)(arr[None])[0])
    return v if math.isfinite(v) else None


def finite(x: float | None, digits: int = 4) -> float | None:
    """A JSON-safe rounded float (None for None/NaN/inf)."""
    if x is None or not math.isfinite(float(x)):
        return None
    return round(float(x), digits)


def interval(ci: Interval | None, digits: int = 4) -> list[float | None] | None:
    return None if ci is None else [finite(ci[0], digits), finite(ci[1], digits)]


def table_rows(rows) -> list[dict]:
    """Trial rows as a list of dicts: from a list of dicts, a ``pyarrow.Table`` (or anything
    with ``to_pylist``) or a pandas frame."""
    if hasattr(rows, "to_pylist"):
        return list(rows.to_pylist())
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        return list(rows.to_dict("records"))
    return [dict(r) for r in rows]


def split_status(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(procedures: rows whose task ran, failed tasks). A failed task is not a procedure."""
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    return ok, [r for r in rows if r.get("status", "ok") != "ok"]
