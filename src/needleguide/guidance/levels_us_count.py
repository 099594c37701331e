"""Counting levels on the bone line of a stitched paramedian sagittal sweep.

Input: the panorama axis (mm; cranial = smaller x, the usual image-left orientation), the
bone depth (mm, NaN where no bone) and the bone echo strength along it.

1. Interlaminar gaps: where the bone line lies deeper than the laminae on *both* sides
   (depth minus the shallower of the two side minima over ``side_mm``), peaks at least
   ``min_gap_depth_mm`` deep and ``min_spacing_mm`` apart; no bone counts as deep.
2. The sacrum: the caudal end of the bone line is a long continuous echo with no gap. The
   most caudal gap with ≥ ``sacrum_min_mm`` of gap-free bone below it is L5–S1.
3. Upward from L5–S1, each next gap is one level (gaps closer than 0.55 of the running
   pitch merged, keeping the deeper; one longer than 1.6 pitches splits into two).
4. Level position ``u`` of a point: linear between counted gaps (gap k at u = k),
   extrapolated at the pitch beyond them. Confidence: the sacrum's evidence times, for
   every gap counted up to the point, its depth and pitch regularity.

Baseline (``baseline_count``): bright peaks of the strength profile are laminae, the most
caudal is S1; no sacrum logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import maximum_filter1d, median_filter, minimum_filter1d
from scipy.signal import find_peaks

INTERSPACES = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1")
PITCH_PRIOR_MM = 32.0
# caudal of L5–S1 the level position falls by 1 per this distance (no gaps to count on the
# sacrum): 'sacrum' starts 15 mm below the L5–S1 interspace (half a typical pitch)
SACRAL_LEVEL_MM = 30.0


def level_name(u: float) -> str:
    """Interspace nearest to level position ``u`` ('sacrum' below L5–S1 by > ½ level)."""
    k = int(np.floor(u + 0.5))
    if k < 0:
        return "sacrum"
    return INTERSPACES[k] if k < len(INTERSPACES) else f"above {INTERSPACES[-1]}"


@dataclass
class CountResult:
    """Interspaces on the panorama axis (baseline: naive peaks)."""

    gaps_mm: list[float] = field(default_factory=list)  # counted interspaces, caudal first
    pitch_mm: float = PITCH_PRIOR_MM

    def level_at(self, x_mm: float) -> float:
        """Level position u of panorama position ``x_mm`` (NaN without gaps)."""
        return _interp_level(np.asarray(self.gaps_mm, float), x_mm, self.pitch_mm)


def _interp_level(g: np.ndarray, x: float, pitch: float) -> float:
    """u at ``x`` given gap positions ``g`` (caudal first, decreasing): gap k at u = k."""
    if g.size == 0:
        return float("nan")
    if x >= g[0]:
        return -(x - g[0]) / pitch
    if x <= g[-1]:
        return len(g) - 1 + (g[-1] - x) / pitch
    k = int(np.nonzero(g >= x)[0][-1])
    return k + (g[k] - x) / max(g[k] - g[k + 1], 1e-6)


def _run_length(mask: np.ndarray) -> np.ndarray:
    """Length (samples) of the run of True each True element belongs to (0 elsewhere)."""
    out = np.zeros(mask.size, int)
    i = 0
    while i < mask.size:
        if mask[i]:
            j = i
            while j < mask.size and mask[j]:
                j += 1
            out[i:j] = j - i
            i = j
        else:
            i += 1
    return out


def gap_signal(x_mm: np.ndarray, depth_mm: np.ndarray, covered: np.ndarray | None = None,
               side_mm: float = 14.0, bridge_mm: float = 3.0, median_mm: float = 4.0
               ) -> np.ndarray:
    """Depth in excess of the shallower of the bone minima either side (mm): high in an
    interlaminar gap. No bone inside the scan area (``covered``) counts as deep unless the
    loss is ≤ ``bridge_mm`` long (bridged), columns outside it as unknown (never a lamina;
    NaN in the result); the depth is median-filtered over ``median_mm`` (a window is wider
    than a notch)."""
    d = np.array(depth_mm, float)
    cov = np.ones(d.shape, bool) if covered is None else np.asarray(covered, bool)
    if not np.any(np.isfinite(d) & cov):
        return np.full(d.shape, np.nan)
    step = float(np.median(np.diff(x_mm)))
    deep = float(np.nanmax(d[cov]))
    hole = np.isnan(d) & cov
    ok = np.nonzero(~np.isnan(d))[0]
    if ok.size >= 2:  # short losses of the bone echo (an oblique facet of it) are bridged
        run = _run_length(hole)
        short = hole & (run * step <= bridge_mm)
        d[short] = np.interp(np.nonzero(short)[0], ok, d[ok])
    d[np.isnan(d) & cov] = deep
    big = deep + 1e3
    d[~cov] = big
    d = median_filter(d, size=max(int(round(median_mm / step)), 1), mode="nearest")
    n = max(int(round(side_mm / step)), 2)
    pad = np.r_[np.full(n, big), d, np.full(n, big)]
    m = minimum_filter1d(pad, n, mode="nearest")  # window [c - n//2, c - n//2 + n - 1]
    i = np.arange(d.size) + n
    left = m[i - n + n // 2]  # min over the n samples above (cranial of) i
    right = m[i + 1 + n // 2]  # min over the n samples below i
    out = d - np.maximum(left, right)
    out[~cov | (np.maximum(left, right) >= big)] = np.nan
    return out


def find_gaps(x_mm: np.ndarray, depth_mm: np.ndarray, covered: np.ndarray | None = None,
              min_depth_mm: float = 4.0, min_spacing_mm: float = 14.0
              ) -> list[tuple[float, float]]:
    """Interlaminar gaps along a bone line: (x in mm, depth excess in mm)."""
    x = np.asarray(x_mm, float)
    if x.size < 8:
        return []
    gs = gap_signal(x, depth_mm, covered)
    step = float(np.median(np.diff(x)))
    pk, _ = find_peaks(np.nan_to_num(gs, nan=0.0), height=min_depth_mm,
                       distance=max(int(min_spacing_mm / step), 1))
    g0 = np.nan_to_num(gs, nan=0.0)
    out = []
    for i in pk:  # the centroid of the gap (where it is ≥ half its peak), not its deepest
        lo, hi = i, i
        while lo > 0 and g0[lo - 1] >= 0.5 * g0[i]:
            lo -= 1
        while hi < len(g0) - 1 and g0[hi + 1] >= 0.5 * g0[i]:
            hi += 1
        w = g0[lo:hi + 1]
        out.append((float((x[lo:hi + 1] * w).sum() / w.sum()), float(gs[i])))
    return out


def baseline_count(x_mm: np.ndarray, strength: np.ndarray) -> CountResult:
    """Naive: peaks of the smoothed bone-strength profile are laminae (≥ 15 mm apart,
    above the median), the most caudal one is S1; interspaces halfway between peaks."""
    x = np.asarray(x_mm, float)
    s = np.nan_to_num(np.asarray(strength, float))
    if x.size < 8 or not np.any(s > 0):
        return CountResult()
    step = float(np.median(np.diff(x)))
    sm = maximum_filter1d(median_filter(s, max(int(3.0 / step), 1)), 3)
    pk, _ = find_peaks(sm, height=float(np.median(sm)), distance=max(int(15.0 / step), 1))
    if pk.size < 2:
        return CountResult()
    px = np.sort(x[pk])[::-1]  # caudal first: S1, L5, L4, …
    gaps = list(0.5 * (px[:-1] + px[1:]))
    pitch = float(np.median(-np.diff(px)))
    return CountResult(gaps, pitch)
