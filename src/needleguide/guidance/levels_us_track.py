"""Interlaminar gaps tracked through the frames of a sweep, the sacrum, and the count.

Each frame's gaps (``levels_us_count.find_gaps``) are linked to the gaps of the previous
two frames whose panorama position (image x + the frame's offset) lies within
``link_mm``: only the frame-to-frame displacement must be right, not its sum over the
sweep. A gap's position in any frame is taken from the nearest frame that shows it.

The sacrum: the most caudal track with a long (``sacrum_min_mm``) gap-free bone line
caudal to it in some frame is L5–S1 (the sacrum is a continuous echo; the L5 lamina below
L4–L5 is ≈ 15–25 mm long) and a gap one pitch above it. Tracks above it are counted one
level each (tracks closer than 0.55 pitch merged, a step of more than 1.6 pitches counted
as round(step / pitch) levels). The interspace is placed ``GAP_OFFSET_PITCH`` cranial of
the gap's centroid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from needleguide.guidance.levels_us_count import PITCH_PRIOR_MM, SACRAL_LEVEL_MM

# the interspace lies this fraction of a pitch cranial of the centroid of the bone-line gap
# (the gap's deep part is the caudal lamina's sloping upper edge; median level error of the
# uncorrected count on tuning sweeps 100–109: +0.18)
GAP_OFFSET_PITCH = 0.18


@dataclass
class Track:
    """One gap seen in several frames: frame index -> (image x mm, depth excess mm)."""

    seen: dict[int, tuple[float, float]] = field(default_factory=dict)
    pano: list[float] = field(default_factory=list)

    @property
    def depth_mm(self) -> float:
        return float(max(d for _, d in self.seen.values()))

    @property
    def x_pano_mm(self) -> float:
        return float(np.median(self.pano))

    def x_in(self, k: int, off_x: np.ndarray) -> float:
        """Image x (mm) of this gap in frame ``k``, from the nearest frame that shows it."""
        j = min(self.seen, key=lambda i: abs(i - k))
        return float(self.seen[j][0] + off_x[j] - off_x[k])


def track_gaps(gaps: list[list[tuple[float, float]]], off_x: np.ndarray,
               link_mm: float = 11.0) -> list[Track]:
    """Link per-frame gaps (image x mm, depth) into tracks through the frames."""
    tracks: list[Track] = []
    last: dict[int, tuple[int, float]] = {}  # track id -> (frame, pano x)
    for k, fg in enumerate(gaps):
        used = set()
        for x, d in sorted(fg, key=lambda t: -t[1]):
            X = x + off_x[k]
            cand = [(abs(X - px), t) for t, (f, px) in last.items()
                    if k - f <= 2 and t not in used and abs(X - px) < link_mm]
            if cand:
                t = min(cand)[1]
            else:
                t = len(tracks)
                tracks.append(Track())
            tracks[t].seen[k] = (x, d)
            tracks[t].pano.append(X)
            last[t] = (k, X)
            used.add(t)
    return _merge(tracks, link_mm)


def _merge(tracks: list[Track], link_mm: float) -> list[Track]:
    """Join fragments of one gap: tracks never seen in the same frame whose panorama
    positions lie within ``link_mm`` (a gap lost for a few frames in clutter)."""
    out: list[Track] = []
    for t in sorted(tracks, key=lambda t: -len(t.seen)):
        for o in out:
            if not set(o.seen) & set(t.seen) and abs(o.x_pano_mm - t.x_pano_mm) < link_mm:
                o.seen.update(t.seen)
                o.pano.extend(t.pano)
                break
        else:
            out.append(t)
    return out


@dataclass
class Count:
    """Counted gaps, caudal first (L5–S1, L4–L5, …); ``None`` marks a level inferred from
    a long step (no gap seen). ``anchor_conf`` is the sacrum's evidence."""

    tracks: list[Track | None]
    pitch_mm: float
    anchor_conf: float
    quality: list[float]

    def level_at(self, k: int, x_mm: float, off_x: np.ndarray) -> tuple[float, float]:
        """(level position u, confidence) of image x ``x_mm`` in frame ``k``."""
        p = self.pitch_mm
        g = np.array(_positions(self.tracks, k, off_x, p)) - GAP_OFFSET_PITCH * p
        if x_mm >= g[0]:
            u = -(x_mm - g[0]) / SACRAL_LEVEL_MM
        elif x_mm <= g[-1]:
            u = len(g) - 1 + (g[-1] - x_mm) / p
        else:
            n = int(np.nonzero(g >= x_mm)[0][-1])
            u = n + (g[n] - x_mm) / max(g[n] - g[n + 1], 1e-6)
        n = int(np.clip(np.ceil(u), 0, len(g) - 1))
        conf = self.anchor_conf * float(np.prod(self.quality[1:n + 1]))
        conf *= 0.7 ** max(u - (len(g) - 1), 0.0)
        return float(u), float(conf)


def _positions(tracks, k: int, off_x: np.ndarray, pitch: float) -> list[float]:
    """Image x of every counted level in frame ``k``; inferred levels (``None``) linear
    between their seen neighbours, or one pitch on beyond the last."""
    idx = [i for i, t in enumerate(tracks) if t is not None]
    val = [tracks[i].x_in(k, off_x) for i in idx]
    out = np.interp(np.arange(len(tracks)), idx, val)
    last = idx[-1]
    out[last + 1:] = val[-1] - pitch * (np.arange(len(tracks))[last + 1:] - last)
    return [float(v) for v in out]


def _expected(t: Track, covered_mm, off_x: np.ndarray, edge_mm: float) -> int:
    """Frames whose covered range holds track ``t`` at least ``edge_mm`` from its ends."""
    n = 0
    for k, (lo, hi) in enumerate(covered_mm):
        x = t.x_in(k, off_x)
        n += lo + edge_mm <= x <= hi - edge_mm
    return n


def _caudal_stretch(t: Track, gaps, covered_mm) -> float:
    """Longest gap-free stretch (mm) caudal of track ``t`` in any frame that shows it."""
    best = 0.0
    for k, (x, _) in t.seen.items():
        below = [gx for gx, _ in gaps[k] if gx > x + 1.0]
        end = min(below) if below else covered_mm[k][1]
        best = max(best, end - x)
    return best


def count_from_sacrum(tracks: list[Track], gaps: list[list[tuple[float, float]]],
                      covered_mm: list[tuple[float, float]], off_x: np.ndarray,
                      sacrum_min_mm: float = 30.0, min_seen: int = 3,
                      min_visible: float = 0.4, edge_mm: float = 14.0,
                      sigma_pitch: float = 0.25, step_range: tuple[float, float] = (0.55, 1.45),
                      start_mm: float | None = None, extend_weak: bool = True
                      ) -> Count | None:
    """The lumbar gaps as the best regular chain, L5–S1 at its caudal end on the sacrum.

    Tracks count if seen in ≥ ``min_seen`` frames and in ≥ ``min_visible`` of the frames
    whose scan area holds them ``edge_mm`` from its ends (a real gap stays in view while the
    probe slides over it; clutter comes and goes). Dynamic programming over the tracks,
    cranial to caudal: each track in the chain scores 0.5 + its visibility + its depth
    (÷ 20 mm, ≤ 1); a step between consecutive chain gaps must lie within ``step_range`` of
    the median spacing (pitch) and costs ((step / pitch − 1) / ``sigma_pitch``)²; a step of
    2 pitches (one gap not seen) costs 2 more. The chain's caudal end scores +2 when the
    bone below it runs gap-free ≥ ``sacrum_min_mm`` in some frame (the sacrum), −2 if not.
    ``covered_mm``: per frame, the image x range (mm) where bone could be seen.
    ``start_mm``: panorama position of the first frame's centre — the sweep starts with the
    sacrum under the probe, so no gap more caudal than 5 mm above it is counted. A faint
    track (seen in ≥ 2 frames, too rarely to count) 0.6–1.4 pitch below the chain's caudal
    end is the L5–S1 window seen badly (degenerated, deep): with ``extend_weak`` it becomes
    L5–S1 (confidence × 0.8 and its quality 0.6), else the confidence falls × 0.6."""
    good = []
    for t in tracks:
        vis = len(t.seen) / max(_expected(t, covered_mm, off_x, edge_mm), 1)
        if start_mm is not None and t.x_pano_mm > start_mm - 5.0:
            continue  # caudal of the first frame's centre: on the sacrum
        if len(t.seen) >= min_seen and vis >= min_visible:
            good.append((t, min(vis, 1.0)))
    if not good:
        return None
    good.sort(key=lambda tv: tv[0].x_pano_mm)  # cranial first
    xs = np.array([t.x_pano_mm for t, _ in good])
    steps = np.diff(xs)
    steps = steps[(steps > 0.5 * PITCH_PRIOR_MM) & (steps < 1.5 * PITCH_PRIOR_MM)]
    pitch = float(np.clip(np.median(steps), 22.0, 45.0)) if steps.size else PITCH_PRIOR_MM
    n = len(good)
    gain = [0.5 + v + min(t.depth_mm / 20.0, 1.0) for t, v in good]
    best = list(gain)  # best chain score ending (caudally) at i
    prev: list[int | None] = [None] * n
    missing = [0] * n
    for i in range(n):
        for j in range(i):
            r = (xs[i] - xs[j]) / pitch
            if step_range[0] <= r <= step_range[1]:
                cost, miss = ((r - 1.0) / sigma_pitch) ** 2, 0
            elif 2 * step_range[0] + 0.6 <= r <= 2 * step_range[1] - 0.6:
                cost, miss = 2.0 + ((r / 2 - 1.0) / sigma_pitch) ** 2, 1
            else:
                continue
            sc = best[j] + gain[i] - cost
            if sc > best[i]:
                best[i], prev[i], missing[i] = sc, j, miss
    sac = [_caudal_stretch(t, gaps, covered_mm) for t, _ in good]
    final = [b + (2.0 if s >= sacrum_min_mm else -2.0) for b, s in zip(best, sac, strict=True)]
    end = int(np.argmax(final))
    chain: list[Track | None] = []
    i: int | None = end
    while i is not None:
        chain.append(good[i][0])
        if missing[i]:
            chain.append(None)
        i = prev[i]
    quality = [0.6 if t is None else
               (0.6 + 0.4 * float(np.clip((t.depth_mm - 4.0) / 8.0, 0, 1)))
               * (1.0 if len(t.seen) >= 4 else 0.85) for t in chain]
    srt = sorted(final, reverse=True)
    margin = (srt[0] - srt[1]) if len(srt) > 1 else 4.0
    conf = float(np.clip(sac[end] / 50.0, 0.5, 1.0) * np.clip(0.6 + 0.1 * margin, 0.6, 1.0))
    anchor_x = good[end][0].x_pano_mm
    weak = [t for t in tracks if len(t.seen) >= 2
            and 0.6 * pitch <= t.x_pano_mm - anchor_x <= 1.4 * pitch
            and (start_mm is None or t.x_pano_mm <= start_mm - 5.0)]
    if weak and extend_weak:  # a faint gap one pitch below the chain: take it as L5–S1
        w = max(weak, key=lambda t: len(t.seen))
        chain.insert(0, w)
        quality.insert(0, 0.6)
        conf *= 0.8
    elif weak:  # a faint gap one pitch below: L5–S1 may have been missed (count one low)
        conf *= 0.6
    return Count(chain, pitch, conf * quality[0], quality)
