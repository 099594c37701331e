"""Maps and line measures of the needle-from-motion analyser (:mod:`.needle_motion`):
the motion z map of two frames, the moving region, the motion along a line, and the
whole-image shift of hand tremor (the shaft's direction: :mod:`.needle_motion_rays`; the
echo's end: :mod:`.needle_motion_step`). ``prm`` is a
:class:`.needle_motion.MotionParams` (lengths mm at the image plane; "grid": the
analyser's working grid, ``scale`` frame pixels per pixel)."""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
from numba import njit

from needleguide.guidance.needle_motion_bands import band_index, band_stats


def tremor_shift(prev: np.ndarray, cur: np.ndarray, max_px: float, min_px: float = 0.0
                 ) -> np.ndarray:
    """Whole-image shift (col, row) of ``cur`` against ``prev`` (phase correlation); 0 when
    implausible (> ``max_px``) or within the estimate's own scatter on a still probe
    (< ``min_px``: re-sampling a still frame by a spurious fraction of a pixel would
    decorrelate it). With ``min_px`` > 0 a quarter-size estimate first (a quarter of the
    time): within ``min_px`` / 2 of none, none (a still probe's frames, most of them)."""
    h, w = prev.shape
    if min_px > 0.0 and h >= 64 and w >= 64:
        half = (w // 2, h // 2)
        ps = cv2.resize(prev, half, interpolation=cv2.INTER_AREA)
        cs = cv2.resize(cur, half, interpolation=cv2.INTER_AREA)
        (dx, dy), _ = cv2.phaseCorrelate(ps, cs, _hann(ps.shape))
        if 2.0 * float(np.hypot(dx, dy)) < 0.5 * min_px:
            return np.zeros(2)
    win = _hann(prev.shape)
    (dx, dy), _ = cv2.phaseCorrelate(prev, cur, win)
    d = np.array([dx, dy])
    n = float(np.hypot(*d))
    return d if min_px <= n <= max_px else np.zeros(2)


_HANN: dict = {}


def _hann(shape) -> np.ndarray:
    if shape not in _HANN:
        _HANN[shape] = cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_32F)
    return _HANN[shape]


ALIGN_MIN_PX = 0.05  # a shift below this is not applied (the frame as it is)


def aligned(prev: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``prev`` moved by ``d`` (col, row) px."""
    if float(np.hypot(*d)) < ALIGN_MIN_PX:
        return prev
    m = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
    return cv2.warpAffine(prev, m, (prev.shape[1], prev.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


class FullFrames:
    """The last ``n`` frames at full resolution (float32, 0 … 1) and their mean, in
    buffers reused from frame to frame (fresh megabytes every frame cost more in page
    faults than the arithmetic)."""

    def __init__(self, n: int):
        self._frames: deque = deque(maxlen=n)
        self._mean: np.ndarray | None = None
        self._buf: np.ndarray | None = None  # the mean's

    def add(self, pixels: np.ndarray) -> np.ndarray:
        """One frame's grey pixels (uint8), scaled to 0 … 1; returns them."""
        q = self._frames
        if q and q[-1].shape != pixels.shape:  # another size (a new preset): start afresh
            q.clear()
        old = q.popleft() if len(q) == q.maxlen else np.empty(pixels.shape, np.float32)
        q.append(np.multiply(pixels, np.float32(1.0 / 255.0), out=old, dtype=np.float32))
        self._mean = None
        return q[-1]

    def mean(self) -> np.ndarray:
        """Their mean (worked out once per frame; OpenCV's sums, no copies)."""
        if self._mean is None:
            f = list(self._frames)
            if len(f) == 1:
                self._mean = f[0]
            else:
                m = self._buf if self._buf is not None and self._buf.shape == f[0].shape \
                    else None
                m = cv2.add(f[0], f[1], dst=m)
                for x in f[2:]:
                    cv2.add(m, x, dst=m)
                self._mean = self._buf = np.multiply(m, np.float32(1.0 / len(f)), out=m)
        return self._mean


def history_mean(frames: list, shift: np.ndarray, memo: dict) -> tuple[np.ndarray,
                                                                       int | None]:
    """The mean of ``frames`` ((grid, shift, number) of the analyser's history), each
    aligned to the newest frame's ``shift`` (receiver noise averaged, tissue speckle kept),
    and its key in ``memo`` (the number of its first frame) when none of them had to be
    moved: a still probe's mean is the same as when it was the newest, kept."""
    key = frames[0][2] if all(float(np.hypot(*(shift - s))) < ALIGN_MIN_PX
                              for _, s, _ in frames) else None
    if key is not None and key in memo:
        return memo[key]["mean"], key
    out = None
    for g, s, _ in frames:
        a = aligned(g, shift - s)
        out = a.copy() if out is None else cv2.add(out, a)
    out = out * np.float32(1.0 / len(frames))
    if key is not None:
        memo[key] = {"mean": out}
    return out, key


def motion_z(prevs: list[np.ndarray], cur: np.ndarray, px_mm: float, prm,
             memo: dict | None = None, keys: list | None = None) -> np.ndarray:
    """Noise-normalised local decorrelation of ``cur`` against each of the aligned frames
    ``prevs`` (shortest lag first; float32, 0 outside the scan area; the larger over
    ``prevs``; the band statistics from the longest lag, the most conservative): (1 − ρ −
    median) / (1.4826 · MAD) within each band of the current frame's local brightness ×
    edge strength × depth (still tissue's decorrelation depends on its brightness and
    depth — receiver noise — and on its edges — interfaces flicker); bands of receiver noise (median
    1 − ρ > ``noise_d``) and black pixels (local mean ≤ ``dark_floor``) give 0.
    ``memo``/``keys`` (one per frame of ``prevs`` and last ``cur``'s, None where not kept):
    the box means of frames seen before (:func:`_box_sums`)."""
    k = max(3, int(round(prm.window_mm / px_mm)) | 1)
    box = (k, k)
    mb, c2 = _box_sums(cur, box, memo, None if keys is None else keys[-1])
    vb = c2 - mb * mb
    inside = (cv2.blur((cur > 0).astype(np.float32), box) > 0.99) & (vb > 1e-6)
    out = np.zeros_like(cur)
    if int(inside.sum()) < 100:
        return out
    edge = cv2.magnitude(cv2.Sobel(mb, cv2.CV_32F, 1, 0), cv2.Sobel(mb, cv2.CV_32F, 0, 1))
    nb, ne, nd = prm.bands, prm.edge_bands, prm.depth_bands
    # depth bands: the same brightness is noisier deeper (the TGC lifts the noise)
    rows = np.nonzero(inside.any(axis=1))[0]
    depth = np.clip(((np.arange(cur.shape[0]) - rows[0]) * nd) // max(rows[-1] - rows[0] + 1, 1),
                    0, nd - 1).astype(np.int32)
    idx = band_index(mb, edge, inside, nb, ne, depth, nd)
    stats = None
    for i in reversed(range(len(prevs))):  # the longest lag first: its band statistics
        a = prevs[i]  # serve all lags
        ma, a2 = _box_sums(a, box, memo, None if keys is None else keys[i])
        ac = cv2.blur(a * cur, box)
        if stats is None:
            d, ok = _decorrelation(ma, a2, ac, mb, vb, inside)
            med, sig = band_stats(d, inside, idx, nb * ne * nd, prm.sig_floor)
            sig[med > prm.noise_d] = np.inf  # bands of receiver noise (1 − ρ of noise ≈ 1)
            stats = med, sig
            _z_max(d, ok, idx, med, sig, out)
        else:
            _decorrelation_z_max(ma, a2, ac, mb, vb, inside, idx, stats[0], stats[1], out)
    if prm.dark_floor > 0:  # black: no echo, nothing to see move (receiver noise flickers)
        out[mb <= prm.dark_floor] = 0.0
    if prm.smooth_mm > 0:  # tissue moves over mm, noise pixel by pixel
        out = cv2.GaussianBlur(out, (0, 0), prm.smooth_mm / px_mm)
    return out


def _box_sums(a: np.ndarray, box: tuple, memo: dict | None, key) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """Box means of ``a`` and of ``a``², kept in ``memo[key]`` (``NeedleMotion``'s: the
    same frames' mean is the newest one first, then each lag's)."""
    entry = None if memo is None or key is None else memo.get(key)
    if entry is not None and "box" in entry and entry["box"][0] == box:
        return entry["box"][1], entry["box"][2]
    ma, a2 = cv2.blur(a, box), cv2.blur(a * a, box)
    if entry is not None:
        entry["box"] = (box, ma, a2)
    return ma, a2


@njit(cache=True, inline="always")
def _pixel_decorrelation(ma, a2, ac, mb, vb, inside, i, j):
    """1 − ρ at pixel (i, j) and whether it counts (see :func:`_decorrelation`)."""
    m = ma[i, j]
    va = a2[i, j] - m * m
    cab = ac[i, j] - m * mb[i, j]
    d = np.float32(1.0) - cab / np.sqrt(max(va * vb[i, j], np.float32(1e-10)))
    return d, inside[i, j] and va > np.float32(1e-6)


@njit(cache=True)
def _decorrelation(ma: np.ndarray, a2: np.ndarray, ac: np.ndarray, mb: np.ndarray,
                   vb: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1 − ρ of the local (box) statistics of a frame (mean ``ma``, mean square ``a2``)
    against the current one (mean ``mb``, variance ``vb``, cross mean ``ac``), and where
    it counts: inside the scan area with the frame's local variance > 1e-6."""
    h, w = ma.shape
    d = np.empty((h, w), np.float32)
    ok = np.empty((h, w), np.bool_)
    for i in range(h):
        for j in range(w):
            d[i, j], ok[i, j] = _pixel_decorrelation(ma, a2, ac, mb, vb, inside, i, j)
    return d, ok


@njit(cache=True, inline="always")
def _raise_z(out, i, j, d, k, med, sig):
    """``out[i, j]`` = max(itself, (d − med) / sig of band ``k``)."""
    z = (d - med[k]) / sig[k]
    if z > out[i, j]:
        out[i, j] = z


@njit(cache=True)
def _z_max(d: np.ndarray, ok: np.ndarray, idx: np.ndarray, med: np.ndarray,
           sig: np.ndarray, out: np.ndarray) -> None:
    """``out`` = max(``out``, (d − med) / sig of each pixel's band) where ``ok`` (``out``
    is ≥ 0: elsewhere unchanged)."""
    h, w = d.shape
    for i in range(h):
        for j in range(w):
            if ok[i, j]:
                _raise_z(out, i, j, d[i, j], idx[i, j], med, sig)


@njit(cache=True)
def _decorrelation_z_max(ma: np.ndarray, a2: np.ndarray, ac: np.ndarray, mb: np.ndarray,
                         vb: np.ndarray, inside: np.ndarray, idx: np.ndarray, med: np.ndarray,
                         sig: np.ndarray, out: np.ndarray) -> None:
    """:func:`_decorrelation` then :func:`_z_max` in one pass (the lags after the first)."""
    h, w = ma.shape
    for i in range(h):
        for j in range(w):
            d, ok = _pixel_decorrelation(ma, a2, ac, mb, vb, inside, i, j)
            if ok:
                _raise_z(out, i, j, d, idx[i, j], med, sig)


@njit(cache=True)
def _heaviest(lab: np.ndarray, z: np.ndarray, n: int):
    """The label (1 … n − 1) of ``lab`` with the largest sum of ``z`` (the first of equals),
    that sum, and its pixels in raster order: rows, cols (int64), z (float64)."""
    h, w = lab.shape
    mass = np.zeros(n, np.float64)
    cnt = np.zeros(n, np.int64)
    for i in range(h):
        for j in range(w):
            k = lab[i, j]
            if k > 0:
                mass[k] += np.float64(z[i, j])
                cnt[k] += 1
    best = 1
    for k in range(2, n):
        if mass[k] > mass[best]:
            best = k
    ys = np.empty(cnt[best], np.int64)
    xs = np.empty(cnt[best], np.int64)
    zv = np.empty(cnt[best], np.float64)
    c = 0
    for i in range(h):
        for j in range(w):
            if lab[i, j] == best:
                ys[c], xs[c], zv[c] = i, j, z[i, j]
                c += 1
    return best, mass[best], ys, xs, zv


def main_component(z: np.ndarray, px_mm: float, prm, peak_z: float | None = None):
    """The moving region: the connected set of z ≥ ``z_on`` with the most z mass, if it
    holds ≥ ``min_mass`` and reaches ``peak_z`` (default ``tip_z``); (rows, cols, z
    weights, unit axis when elongated (a jiggled shaft) else None)."""
    m = (z >= prm.z_on).astype(np.uint8)
    n, lab = cv2.connectedComponents(m, connectivity=8)
    if n <= 1:
        return None
    best, mass, ys, xs, w = _heaviest(lab, z, n)
    if mass * px_mm * px_mm < prm.min_mass:
        return None
    if float(w.max()) < (prm.tip_z if peak_z is None else peak_z):
        return None
    c = np.array([float(w @ xs), float(w @ ys)]) / float(w.sum())
    dx, dy = xs - c[0], ys - c[1]
    cov = np.array([[w @ (dx * dx), w @ (dx * dy)], [w @ (dx * dy), w @ (dy * dy)]]) / w.sum()
    ev, evec = np.linalg.eigh(cov)
    length_mm = 4.0 * np.sqrt(max(ev[1], 0.0)) * px_mm
    elongated = None
    if length_mm >= prm.shape_min_mm and ev[1] >= prm.shape_aspect**2 * max(ev[0], 1e-9):
        elongated = evec[:, 1]
    return ys, xs, w, elongated


def line_profile(z: np.ndarray, p0: np.ndarray, u: np.ndarray, px_mm: float,
                 band_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The max of ``z`` across a band of ±``band_mm`` around the line, sampled every pixel
    along it inside the image: (s px, profile)."""
    h, w = z.shape
    nrm = np.array([-u[1], u[0]])
    L = int(np.hypot(h, w))
    s = np.arange(-L, L + 1, dtype=np.float32)
    xs = p0[0] + s * u[0]
    ys = p0[1] + s * u[1]
    ok = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
    s, xs, ys = s[ok], xs[ok], ys[ok]
    if s.size == 0:
        return s, s
    nb = max(1, int(round(band_mm / px_mm)))
    prof = np.zeros(s.size, np.float32)
    for o in range(-nb, nb + 1):
        mx = (xs + o * nrm[0]).astype(np.float32)
        my = (ys + o * nrm[1]).astype(np.float32)
        v = cv2.remap(z, mx[None, :], my[None, :], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)[0]
        np.maximum(prof, v, out=prof)
    return s, prof


__all__ = ["FullFrames", "aligned", "line_profile", "main_component", "motion_z", "tremor_shift"]
