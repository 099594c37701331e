"""Thin ridges of contrast: the streaming cue of a vessel.

Injected into a vein (the epidural plexus) or an artery, contrast is carried along the
lumen: a thin (1–3 mm) line that runs away from the tip, often too faint per pixel to pass
the opacification threshold, but bright when integrated along its length. Outside a
vessel contrast forms a compact collection (its rims are edges, not ridges).

The oriented line detector averages the (noise-normalised) contrast map along a segment
of ``length_mm`` at each of ``n_angles`` orientations, with a Gaussian cross profile of
σ ``width_mm``, and compares this centre line with the two parallel lines ``offset_mm``
to either side: the ridge response is the smaller of the two differences (a step edge,
bright on one side only, gives ≈ 0; a line, brighter than both sides, its amplitude).
Normalised by its own robust noise (MAD over the window) it is a z map; ridge pixels
pass ``z_low`` and belong to a connected set reaching ``z_high``. The cue is the skeleton
length (mm, at the detector) of the ridge sets that come within ``reach_mm`` of the first
opacified point.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numba
import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from needleguide.guidance import contrast_kernels as K


@dataclass(frozen=True)
class LineParams:
    """Line-detector geometry (mm at the detector) and thresholds (*assumptions*, tuned
    on seeds 0–23 of the contrast evaluation)."""

    length_mm: float = 24.0
    width_mm: float = 1.2
    offset_mm: float = 5.0
    n_angles: int = 16
    z_low: float = 3.0
    z_high: float = 5.0
    z_pixel: float = 1.5
    reach_mm: float = 40.0
    window_mm: float = 60.0
    min_pixel_mm: float = 1.0


@lru_cache(maxsize=16)
def _kernels(pixel_mm: float, lp: LineParams) -> tuple[tuple[np.ndarray, float, float], ...]:
    """Oriented line kernels (sum 1) and the side offsets (dx, dy in px) per angle."""
    half = lp.length_mm / 2.0 / pixel_mm
    sc = max(lp.width_mm / pixel_mm, 0.5)
    r = int(np.ceil(half + 3 * sc))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    out = []
    for k in range(lp.n_angles):
        th = np.pi * k / lp.n_angles
        ux, uy = np.cos(th), np.sin(th)
        along = xx * ux + yy * uy
        across = -xx * uy + yy * ux
        w = np.exp(-0.5 * (across / sc) ** 2) * np.clip(half + 0.5 - np.abs(along), 0, 1)
        w /= w.sum()
        d = lp.offset_mm / pixel_mm
        out.append((w.astype(np.float32), float(-uy * d), float(ux * d)))
    return tuple(out)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """img sampled at (x + dx, y + dy) (bilinear, edges replicated)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR
                          | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def ridge_z(znorm: np.ndarray, pixel_mm: float, lp: LineParams) -> np.ndarray:
    """Ridge z map (max over orientations) of a noise-normalised contrast map (iodine
    positive, unit noise). With two threads allowed (OpenCV and numba thread counts
    both ≥ 2) the orientations are split between two threads (OpenCV and the kernels
    release the GIL); the maximum is exact, so the map is the same."""
    img = znorm.astype(np.float32)
    ks = _kernels(float(pixel_mm), lp)
    if img.size < 4096 or min(cv2.getNumThreads(), numba.get_num_threads()) < 2:
        return _ridge_part(img, ks)
    other = _pool().submit(_ridge_part, img, ks[1::2])
    best = _ridge_part(img, ks[::2])
    return np.maximum(best, other.result(), out=best)


def _ridge_part(img: np.ndarray, ks: tuple[tuple[np.ndarray, float, float], ...]
                ) -> np.ndarray:
    """Max over the orientations ``ks`` (kernel, side offsets) of the normalised ridge
    response."""
    best = np.full(img.shape, -np.inf, np.float32)
    buf = np.empty(((img.shape[0] + 1) // 2) * ((img.shape[1] + 1) // 2), np.float32)
    for w, dx, dy in ks:
        c = cv2.filter2D(img, -1, w, borderType=cv2.BORDER_REFLECT)
        K.ridge_update(c, _shift(c, dx, dy), _shift(c, -dx, -dy), best, buf)
    return best


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="ridge")


def ridge_z_reference(znorm: np.ndarray, pixel_mm: float, lp: LineParams,
                      thin: float | None = None) -> np.ndarray:
    """:func:`ridge_z` in numpy (the reference its kernel is tested against). ``thin``:
    an orientation counts only where the centre line exceeds both side lines by at least
    ``thin`` × its own value (−inf elsewhere: the thin-line map of ``contrast_lattice``)."""
    img = znorm.astype(np.float32)
    best = np.full(img.shape, -np.inf, np.float32)
    for w, dx, dy in _kernels(float(pixel_mm), lp):
        c = cv2.filter2D(img, -1, w, borderType=cv2.BORDER_REFLECT)
        d = np.minimum(c - _shift(c, dx, dy), c - _shift(c, -dx, -dy))
        v = d[::2, ::2]
        med = float(np.median(v))
        s = 1.4826 * float(np.median(np.abs(v - med))) + 1e-9
        dz = (d - med) / s
        if thin is not None:
            dz[d < thin * np.maximum(c, 0.0)] = -np.inf
        np.maximum(best, dz, out=best)
    return best


def ridge_length(znorm: np.ndarray, pixel_mm: float, origin: tuple[float, float] | None,
                 lp: LineParams | None = None, exclude: np.ndarray | None = None
                 ) -> tuple[float, np.ndarray]:
    """Skeleton length (mm) of the ridges reaching within ``reach_mm`` of ``origin`` (row,
    col in px) and their mask (full image), searched in a ``window_mm`` box around it
    (``origin`` None: the whole image, every ridge); pixels of ``exclude`` (the opacified
    collection, dilated) do not count. Ridges within a kernel radius of the image border
    are ignored (the filters run off the image there). Images finer than
    ``min_pixel_mm`` are searched at a coarser pixel (area-averaged by an integer factor;
    the z map is already smoothed over ~1.8 mm)."""
    lp = lp or LineParams()
    h, w = znorm.shape
    if origin is None:
        y0, y1, x0, x1 = 0, h, 0, w
    else:
        r = int(round(lp.window_mm / pixel_mm))
        r0, c0 = int(round(origin[0])), int(round(origin[1]))
        y0, y1, x0, x1 = max(r0 - r, 0), min(r0 + r + 1, h), max(c0 - r, 0), min(c0 + r + 1, w)
    out = np.zeros((h, w), bool)
    k = max(1, int(np.ceil(lp.min_pixel_mm / pixel_mm - 1e-6)))
    y1, x1 = y0 + (y1 - y0) // k * k, x0 + (x1 - x0) // k * k
    if (y1 - y0) // k < 8 or (x1 - x0) // k < 8:
        return 0.0, out
    zn = znorm[y0:y1, x0:x1].astype(np.float32)
    ex = None if exclude is None else exclude[y0:y1, x0:x1]
    if k > 1:
        size = ((x1 - x0) // k, (y1 - y0) // k)
        zn = cv2.resize(zn, size, interpolation=cv2.INTER_AREA)
        if ex is not None:
            ex = cv2.resize(ex.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    px = pixel_mm * k
    m, length = _ridges(zn, px, lp, (y0, x0, k, h, w), origin, ex)
    if m is None:
        return 0.0, out
    if k > 1:
        m = np.repeat(np.repeat(m, k, axis=0), k, axis=1)
    out[y0:y1, x0:x1] = m
    return length, out


def _ridges(zn: np.ndarray, px: float, lp: LineParams, geom: tuple[int, int, int, int, int],
            origin: tuple[float, float] | None, ex: np.ndarray | None
            ) -> tuple[np.ndarray | None, float]:
    """Ridge sets (mask on the search grid) and their skeleton length (mm) outside
    ``ex``; ``geom``: (row0, col0, factor, full height, full width) of the grid."""
    m = line_sets(ridge_z(zn, px, lp), zn, px, lp, geom, origin)
    if m is None:
        return None, 0.0
    sk = skeletonize(m)
    if ex is not None:
        sk &= ~ex
    return m, float(sk.sum() * px)


def line_sets(z: np.ndarray, zn: np.ndarray, px: float, lp, geom: tuple[int, int, int, int, int],
              origin: tuple[float, float] | None) -> np.ndarray | None:
    """The connected sets of line pixels (``z`` > ``lp.z_low`` where the map ``zn`` >
    ``lp.z_pixel``; none within a kernel radius, ``lp.length_mm / 2 + lp.offset_mm``, of
    the full image's border) that reach ``lp.z_high`` and come within ``lp.reach_mm`` of
    ``origin`` (None: anywhere), as a mask on the search grid, or None. ``geom``: (row0,
    col0, factor, full height, full width) of the grid; ``z`` is changed (border)."""
    y0, x0, k, h, w = geom
    e = int(np.ceil((lp.length_mm / 2 + lp.offset_mm) / px)) * k
    rows = y0 + k * np.arange(zn.shape[0])[:, None]
    cols = x0 + k * np.arange(zn.shape[1])[None, :]
    z[(rows < e) | (rows >= h - e) | (cols < e) | (cols >= w - e)] = -np.inf
    lab, n = ndi.label((z > lp.z_low) & (zn > lp.z_pixel))
    if n == 0:
        return None
    dist = None if origin is None else np.hypot(rows - origin[0], cols - origin[1]) * (px / k)
    peak, dmin = K.label_max_min(lab, n, z, dist)  # ndi.maximum / ndi.minimum
    near = np.ones(n, bool) if origin is None else dmin <= lp.reach_mm
    keep = (peak >= lp.z_high) & near
    if not keep.any():
        return None
    return np.concatenate([[False], keep])[lab]  # np.isin(lab, idx[keep])
