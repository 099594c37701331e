"""Vertebral levels along a US paramedian sagittal sweep, counted up from the sacrum.

``label_sweep(frames) -> SweepResult``: the frames of an untracked sweep (caudal first or
not; cranial on the image left, the usual longitudinal orientation) are read from their
pixels and pixel spacing only (never ``truth``, never the probe pose):

1. Sector: the union of the frames' non-black pixels (the scan area is fixed in the image,
   shadows move); the bone line of every frame: per column, the row where the smoothed
   echo most exceeds the mean 2–12 mm below it (a bright surface over its shadow).
2. Frame-to-frame displacement: normalised cross-correlation of a template (central part
   of the inscribed rectangle of the sector, log image smoothed σ 1 mm, minus its column
   mean) searched in the next frame (``estimate_shifts``); summed into panorama offsets.
3. The bone line of all frames on one panorama axis (mm), then ``levels_us_count`` finds
   the sacrum and counts the interlaminar gaps upward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from needleguide.guidance.levels_us_count import baseline_count, find_gaps, level_name
from needleguide.guidance.levels_us_track import GAP_OFFSET_PITCH, count_from_sacrum, track_gaps


@dataclass(frozen=True)
class SweepLabel:
    """Label of one frame: the interspace nearest to the frame centre (or 'sacrum'),
    its level position ``u`` (0 = L5–S1, 1 = L4–L5, …), confidence 0–1, and the centre's
    panorama position ``x_mm``."""

    index: int
    name: str
    u: float
    confidence: float
    x_mm: float


@dataclass
class SweepResult:
    labels: list[SweepLabel]
    offsets_mm: np.ndarray  # (n, 2) panorama (x, y) offset of every frame, mm
    profile_x_mm: np.ndarray  # panorama axis
    depth_mm: np.ndarray  # bone depth along the panorama (NaN: no bone)
    strength: np.ndarray  # bone echo strength along the panorama (grey levels)
    gaps_mm: list[float] = field(default_factory=list)  # counted interspaces, caudal first
    anchor_confidence: float | None = None  # sacrum evidence (None: no sacrum found)
    panorama: np.ndarray | None = None  # uint8 image of the stitched frames
    pano_origin_mm: tuple[float, float] = (0.0, 0.0)
    spacing_mm: float = 1.0


def _gray(frame) -> np.ndarray:
    px = np.asarray(frame.pixels)
    if px.ndim == 3:
        px = px[..., :3].mean(axis=2)
    return px.astype(np.float32)


def sector_mask(frames) -> np.ndarray:
    """Scan area: pixels non-black in any frame, holes closed, eroded 3 px."""
    m = np.zeros(frames[0].shape, np.uint8)
    for f in frames:
        m |= (_gray(f) > 0).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k)
    return cv2.erode(m, np.ones((7, 7), np.uint8)).astype(bool)


def bone_line(img: np.ndarray, mask: np.ndarray, sp_mm: float, skin_mm: float = 10.0,
              below_mm: tuple[float, float] = (2.0, 12.0), min_grey: float = 12.0,
              sigma_mm: tuple[float, float] = (0.6, 1.5)):
    """Per column: (bone depth in mm or NaN, strength in grey levels, covered). The bone is
    the row whose smoothed echo (σ ``sigma_mm`` = (depth, lateral): a bone surface is
    continuous along the array, clutter and speckle are not) most exceeds the mean of the
    band ``below_mm`` under it (its shadow) by ≥ ``min_grey`` — searched only where that
    band lies in the scan area (``covered``: the column has such rows)."""
    g = cv2.GaussianBlur(img, (0, 0), sigmaX=max(sigma_mm[1] / sp_mm, 0.5),
                         sigmaY=max(sigma_mm[0] / sp_mm, 0.5))
    h, w = g.shape
    gm = np.where(mask, g, 0.0).astype(np.float64)
    cs = np.vstack([np.zeros((1, w)), np.cumsum(gm, axis=0)])
    cm = np.vstack([np.zeros((1, w)), np.cumsum(mask.astype(np.float64), axis=0)])
    a = max(int(round(below_mm[0] / sp_mm)), 1)
    b = max(int(round(below_mm[1] / sp_mm)), a + 1)
    r = np.arange(h)
    lo = np.clip(r + a, 0, h)
    hi = np.clip(r + b, 0, h)
    n = (hi - lo)[:, None]
    below = (cs[hi] - cs[lo]) / np.maximum(n, 1)
    inside = (cm[hi] - cm[lo]) >= 0.95 * n
    ok = inside & mask & (r[:, None] * sp_mm >= skin_mm) & (n >= b - a)
    score = np.where(ok, g - below, -np.inf)
    row = np.argmax(score, axis=0)
    s = score[row, np.arange(w)]
    covered = ok.sum(axis=0) >= int(round(15.0 / sp_mm))
    bone = covered & (s >= min_grey)
    return np.where(bone, row * sp_mm, np.nan), np.where(bone, s, 0.0), covered


def _inscribed(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1) of a large rectangle inside the scan area."""
    h, w = mask.shape
    widths = mask.sum(axis=1)
    rows = np.nonzero(widths >= 0.6 * widths.max())[0]
    r0, r1 = int(rows[0]), int(rows[-1])
    cols = np.nonzero(mask[r0:r1 + 1].all(axis=0))[0]
    if cols.size < 16 or r1 - r0 < 16:
        cols = np.nonzero(mask[(r0 + r1) // 2])[0]
    return r0, r1, int(cols[0]), int(cols[-1])


def _prep(img: np.ndarray, mask: np.ndarray, sp_mm: float) -> np.ndarray:
    g = cv2.GaussianBlur(img, (0, 0), max(1.0 / sp_mm, 0.5))
    g = np.where(mask, g, 0.0).astype(np.float32)
    return g


def estimate_shifts(frames, mask: np.ndarray, sp_mm: float, max_shift_mm: float = 22.0,
                    back_mm: float = 4.0, prior_per_10mm: float = 0.3
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Content displacement (dx, dy in mm) from each frame to the next, and the peak
    normalised correlation of each match. The template is the central 60 % of the
    inscribed rectangle, rows within 15 mm of the median bone depth (a probe tilting
    between frames moves the content by depth × tilt: the bone depth is what counts). A
    sweep goes one way: a first pass over ±``max_shift_mm`` gives the direction (median
    sign), the second searches that way only (``back_mm`` the other way), so the periodic
    laminae cannot alias a step into a step back by one pitch, and prefers steps near the
    first pass's median (``prior_per_10mm`` of correlation per 10 mm away)."""
    r0, r1, c0, c1 = _inscribed(mask)
    bone = [bone_line(_gray(f), mask, sp_mm)[0] for f in frames]
    zb = float(np.nanmedian(np.concatenate(bone))) / sp_mm if bone else 0.5 * (r0 + r1)
    if not np.isfinite(zb):
        zb = 0.5 * (r0 + r1)
    band = int(round(15.0 / sp_mm))
    my = int(round(8.0 / sp_mm))
    tr0 = int(np.clip(zb - band, max(r0, my), r1 - 16))
    tr1 = int(np.clip(zb + band, tr0 + 16, min(r1, mask.shape[0] - my)))
    wc = c1 - c0
    tc0, tc1 = c0 + int(0.2 * wc), c1 - int(0.2 * wc)
    prep = [_prep(_gray(f), mask, sp_mm) for f in frames]
    m = int(round(max_shift_mm / sp_mm))
    first = _match(prep, tr0, tr1, tc0, tc1, my, -m, m, sp_mm)
    step = float(np.median(first[0][:, 0]))
    b = int(round(back_mm / sp_mm))
    lo, hi = (-b, m) if step >= 0 else (-m, b)
    return _match(prep, tr0, tr1, tc0, tc1, my, lo, hi, sp_mm, step, prior_per_10mm)


def _match(prep, tr0, tr1, tc0, tc1, my, lo, hi, sp_mm, prior_mm=None, weight=0.0):
    """Best template position per frame pair; with ``prior_mm`` the correlation is lowered
    by ``weight`` per 10 mm away from it (a steady hand: resolves a slanted bone line that
    matches itself when slid along)."""
    out = np.zeros((len(prep) - 1, 2))
    peak = np.zeros(len(prep) - 1)
    w = prep[0].shape[1]
    for i in range(1, len(prep)):
        tpl = prep[i - 1][tr0:tr1, tc0:tc1]
        s0, s1 = max(tc0 + lo, 0), min(tc1 + hi, w)
        search = prep[i][tr0 - my:tr1 + my, s0:s1]
        res = cv2.matchTemplate(search, tpl, cv2.TM_CCOEFF_NORMED)
        if prior_mm is not None:
            dxs = (s0 + np.arange(res.shape[1]) - tc0) * sp_mm
            res = res - weight * np.abs(dxs - prior_mm)[None, :] / 10.0
        _, mx, _, (x, y) = cv2.minMaxLoc(res)
        dx = _subpix(res[y, :], x)
        dy = _subpix(res[:, x], y)
        out[i - 1] = ((s0 + dx - tc0) * sp_mm, (dy - my) * sp_mm)
        peak[i - 1] = mx
    return out, peak




def _subpix(v: np.ndarray, i: int) -> float:
    if 0 < i < len(v) - 1:
        d = v[i - 1] - 2 * v[i] + v[i + 1]
        if d < 0:
            return i + 0.5 * (v[i - 1] - v[i + 1]) / d
    return float(i)


def label_sweep(frames, bin_mm: float = 0.5, with_panorama: bool = True) -> SweepResult:
    """Levels of every frame of a paramedian sagittal sweep (see the module docstring)."""
    frames = list(frames)
    if len(frames) < 2:
        raise ValueError("label_sweep: a sweep needs at least 2 frames")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ValueError("label_sweep: all frames of a sweep must have the same size")
    sp = float(frames[0].spacing_mm[1])
    mask = sector_mask(frames)
    if mask.sum() < 0.05 * mask.size:
        raise ValueError("label_sweep: the frames show no scan area (all black)")
    shifts, _ = estimate_shifts(frames, mask, sp)
    off = np.vstack([[0.0, 0.0], -np.cumsum(shifts, axis=0)])
    h, w = shape
    xs = np.arange(w) * sp
    lines = [bone_line(_gray(f), mask, sp) for f in frames]
    gaps = [find_gaps(xs, d, cov) for d, _, cov in lines]
    covered = [(float(xs[cov].min()), float(xs[cov].max())) if cov.any() else (0.0, 0.0)
               for _, _, cov in lines]
    tracks = track_gaps(gaps, off[:, 0])
    xc = float(xs[w // 2])
    count = count_from_sacrum(tracks, gaps, covered, off[:, 0], start_mm=xc + off[0, 0])
    labels = []
    for i in range(len(frames)):
        u, conf = count.level_at(i, xc, off[:, 0]) if count else (float("nan"), 0.0)
        labels.append(SweepLabel(i, level_name(u) if np.isfinite(u) else "unknown", float(u),
                                 float(conf), float(xc + off[i, 0])))
    px, depth, strength = _profile(lines, xs, off, bin_mm)
    pano_gaps = [] if count is None else [
        t.x_pano_mm - GAP_OFFSET_PITCH * count.pitch_mm if t is not None else float("nan")
        for t in count.tracks]
    res = SweepResult(labels, off, px, depth, strength, pano_gaps,
                      None if count is None else count.anchor_conf, spacing_mm=sp)
    if with_panorama:
        res.panorama, res.pano_origin_mm = stitch(frames, mask, off, sp)
    return res


def _profile(lines, xs: np.ndarray, off: np.ndarray, bin_mm: float):
    """Bone depth (strength-weighted mean, NaN: none) and mean strength on the panorama
    axis, from every frame's bone line."""
    X = np.concatenate([xs + ox for ox in off[:, 0]])
    D = np.concatenate([d + oy for (d, _, _), oy in zip(lines, off[:, 1], strict=True)])
    S = np.concatenate([s for _, s, _ in lines])
    ok = np.isfinite(D)
    x0 = float(X.min())
    nb = int(np.ceil((X.max() - x0) / bin_mm)) + 1
    idx = ((X - x0) / bin_mm).astype(int)
    cnt = np.bincount(idx, None, nb)
    wsum = np.bincount(idx[ok], S[ok], nb)
    dsum = np.bincount(idx[ok], S[ok] * D[ok], nb)
    strength = np.where(cnt > 0, wsum / np.maximum(cnt, 1), 0.0)
    depth = np.where(wsum > 0, dsum / np.maximum(wsum, 1e-9), np.nan)
    return x0 + np.arange(nb) * bin_mm, depth, strength


def stitch(frames, mask: np.ndarray, off: np.ndarray, sp_mm: float):
    """Panorama (uint8, max of the frames) and its (x, y) origin in panorama mm."""
    h, w = frames[0].shape
    ox0, oy0 = off[:, 0].min(), off[:, 1].min()
    W = int(np.ceil((off[:, 0].max() - ox0) / sp_mm)) + w
    H = int(np.ceil((off[:, 1].max() - oy0) / sp_mm)) + h
    pano = np.zeros((H, W), np.uint8)
    for f, (ox, oy) in zip(frames, off, strict=True):
        c = int(round((ox - ox0) / sp_mm))
        r = int(round((oy - oy0) / sp_mm))
        g = np.where(mask, _gray(f), 0).astype(np.uint8)
        np.maximum(pano[r:r + h, c:c + w], g, out=pano[r:r + h, c:c + w])
    return pano, (float(ox0), float(oy0))


def baseline_sweep(frames, res: SweepResult | None = None) -> list[SweepLabel]:
    """Baseline: naive peak counting on the panorama's bone-brightness profile (the same
    stitching; every bright peak is a lamina, the most caudal one S1; no sacrum logic)."""
    res = res if res is not None else label_sweep(frames, with_panorama=False)
    cnt = baseline_count(res.profile_x_mm, res.strength)
    out = []
    for lab in res.labels:
        u = cnt.level_at(lab.x_mm)
        out.append(SweepLabel(lab.index, level_name(u) if np.isfinite(u) else "unknown",
                              float(u), 1.0 if np.isfinite(u) else 0.0, lab.x_mm))
    return out


def draw_sweep(res: SweepResult) -> np.ndarray:
    """RGB panorama: bone line (green), counted interspaces (cyan lines, names; grey:
    inferred from a long step, no gap seen), the sacrum, every frame centre's label
    (green ≥ 0.8 confidence, amber below)."""
    if res.panorama is None:
        raise ValueError("draw_sweep: the result has no panorama (with_panorama=False)")
    sp = res.spacing_mm
    ox, oy = res.pano_origin_mm
    pano = res.panorama
    top = 70
    img = np.zeros((pano.shape[0] + top, pano.shape[1], 3), np.uint8)
    img[top:] = pano[..., None]

    def col(x_mm):
        return int(round((x_mm - ox) / sp))

    ok = np.isfinite(res.depth_mm)
    pts = np.stack([(res.profile_x_mm[ok] - ox) / sp,
                    (res.depth_mm[ok] - oy) / sp + top], -1).astype(np.int32)
    for c, r in pts[::2]:
        if 0 <= r < img.shape[0] and 0 <= c < img.shape[1]:
            img[r, c] = (0, 255, 0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    g = np.asarray(res.gaps_mm, float)
    seen = np.isfinite(g)
    if seen.any() and not seen.all():  # levels inferred from a long step: interpolated
        g[~seen] = np.interp(np.nonzero(~seen)[0], np.nonzero(seen)[0], g[seen])
    for k, gx in enumerate(g):
        c = col(gx)
        colour = (0, 220, 255) if seen[k] else (150, 150, 150)
        cv2.line(img, (c, top), (c, img.shape[0] - 1), colour, 1)
        name = level_name(float(k)) + ("" if seen[k] else " (inferred)")
        cv2.putText(img, name, (c + 3, top + 16), font, 0.45, colour, 1, cv2.LINE_AA)
    if res.gaps_mm and np.isfinite(res.gaps_mm[0]):
        cv2.putText(img, "sacrum", (col(res.gaps_mm[0]) + 40, top + 36), font, 0.5,
                    (255, 160, 0), 1, cv2.LINE_AA)
    for lab in res.labels:
        c = col(lab.x_mm)
        colour = (0, 255, 0) if lab.confidence >= 0.8 else (255, 191, 0)
        y = 12 + 18 * (lab.index % 3)
        cv2.line(img, (c, y + 4), (c, top - 2), colour, 1)
        cv2.putText(img, f"{lab.index}:{lab.name}", (c + 2, y), font, 0.33, colour, 1,
                    cv2.LINE_AA)
    return img
