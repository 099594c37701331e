"""Per-frame opacification features of an FL contrast sequence (pixels only).

Live: the pre-injection frames are averaged into a mask and every later frame is
subtracted from it (sign from the display polarity); DSA: the subtracted frames
(``0.5 + Δlog/(2·window)``). The contrast map is smoothed (Gaussian ``smooth_mm``),
divided by the relative noise map (live: quantum noise measured on the pre-injection
frames, :func:`noise_map`) and by its robust σ (MAD): the z map. The opacified region is
its hysteresis threshold (``z_threshold`` kept where connected to a ``z_seed`` pixel,
regions ≥ ``min_area_mm2``). Lengths in mm and areas in mm² at the detector plane.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from needleguide.frame import Frame
from needleguide.guidance import contrast_kernels as K
from needleguide.guidance.contrast_shape import spread_near, spread_per_mass

if TYPE_CHECKING:
    from needleguide.guidance.contrast import ContrastParams


@dataclass
class FrameFeatures:
    """Opacification features of one frame (mm, mm² at the detector plane).

    spread_ratio / eff_area_mm2: spread per unit iodine of the main region
    (:func:`.contrast_shape.spread_per_mass`); near_ratio / near_eff_mm2: the same over
    every opacified region near the first opacified point (a vessel seen in pieces);
    ridge_mm: length of thin contrast ridges beyond the opacified region
    (:mod:`.contrast_line`); lattice_mm: length of thin lines inside it near the first
    opacified point (:mod:`.contrast_lattice`, live); llr: saturation log-likelihood
    ratio (live)."""

    time_s: float
    area_mm2: float = 0.0
    signal: float = 0.0
    length_mm: float = 0.0
    width_mm: float = 0.0
    height_mm: float = 0.0
    breadth_mm: float = 0.0
    spread_mm: float = 0.0
    spread_ratio: float = float("nan")
    eff_area_mm2: float = 0.0
    near_ratio: float = float("nan")
    near_eff_mm2: float = 0.0
    ridge_mm: float = 0.0
    lattice_mm: float = 0.0
    llr: float = 0.0


def opacification(frames: list[Frame], mode: str = "live", n_mask: int = 3,
                  live_average: int = 1) -> tuple[list[np.ndarray], list[float]]:
    """Contrast maps (positive where iodine darkens the beam, display units) and their
    times (s); live: mask (mean of the first ``n_mask`` frames) − the mean of the latest
    ``live_average`` frames."""
    if mode == "dsa":
        sub = [f for f in frames if f.settings.get("dsa_role") != "mask"]
        maps = [(0.5 - np.asarray(f.pixels, np.float32)) for f in sub]
        return maps, [float(f.time_s) for f in sub]
    if len(frames) <= n_mask:
        return [], []
    sign = _sign(frames)
    px = [np.asarray(f.pixels, np.float32) for f in frames]
    mask = np.stack(px[:n_mask]).mean(axis=0)
    maps, times = [], []
    for k in range(n_mask, len(frames)):
        lo = max(n_mask, k - live_average + 1)
        cur = px[k] if lo == k else np.stack(px[lo:k + 1]).mean(axis=0)  # (the same bits)
        maps.append(sign * (mask - cur))
        times.append(float(frames[k].time_s))
    return maps, times


def _sign(frames: list[Frame]) -> float:
    return 1.0 if frames[0].settings.get("display", "white-bone") == "black-bone" else -1.0


def before_map(frames: list[Frame], n_mask: int) -> np.ndarray:
    """Live: the contrast map of the last pre-injection frame (mask − that frame, in the
    same sign convention as :func:`opacification`)."""
    stack = np.stack([np.asarray(f.pixels, np.float32) for f in frames[:n_mask]])
    return _sign(frames) * (stack.mean(axis=0) - stack[-1])


CLIP_MARGIN = 0.005  # display values this close to 0 or 1 are clipped (no signal)


def unclipped(frame: Frame) -> np.ndarray | None:
    """Pixels of ``frame`` that carry signal: not clipped at the display's black or white
    (air beside a neck or a limb saturates and has no noise; statistics over it would make
    the body's noise look tiny). None when nothing is clipped."""
    v = np.asarray(frame.pixels, np.float32)
    top = 255.0 if v.max() > 1.5 else 1.0
    ok = (v > CLIP_MARGIN * top) & (v < (1.0 - CLIP_MARGIN) * top)
    return None if ok.all() or ok.mean() < 0.05 else ok


def noise_map(frames: list[Frame], pixel_mm: float, p: ContrastParams,
              valid: np.ndarray | None = None) -> np.ndarray | None:
    """Relative noise σ map (median 1 over the ``valid`` pixels) of the smoothed contrast
    map, from the frame-to-frame differences of the pre-injection ``frames`` (quantum noise
    grows behind thick anatomy: ≈ 3× across an AP lumbar field), smoothed over
    ``noise_map_mm``; None with fewer than 3 frames (a single spot pair, DSA: one global
    σ)."""
    if len(frames) < 3:
        return None
    s = max(p.smooth_mm / pixel_mm, 0.5)
    sm = [cv2.GaussianBlur(np.asarray(f.pixels, np.float32), (0, 0), s) for f in frames]
    d2 = np.mean([(b - a) ** 2 for a, b in zip(sm, sm[1:], strict=False)], axis=0)
    v = cv2.GaussianBlur(d2.astype(np.float32), (0, 0), p.noise_map_mm / pixel_mm)
    r = np.sqrt(np.maximum(v, 0.0))
    med = K.median32((r if valid is None else r[valid]).ravel())  # = np.median
    if med <= 0:
        return None
    return np.maximum(r / med, 0.2).astype(np.float32)


def dsa_noise_grid(cmap: np.ndarray, pixel_mm: float, block_mm: float,
                   valid: np.ndarray | None = None) -> np.ndarray:
    """DSA: the local noise of one subtracted frame on a grid of ``block_mm`` blocks: the
    median absolute value of its fine detail (the frame minus its Gaussian blur, σ 1 px:
    white quantum noise passes, smooth contrast and anatomy that subtraction left do not)
    per block, NaN where fewer than half the block's pixels are ``valid``. Robust to the
    few edge pixels of a contrast region in a block; a clipped (flat) contrast core reads
    low, which only raises its z."""
    b = max(4, int(round(block_mm / pixel_mm)))
    c = np.asarray(cmap, np.float32)
    hp = np.abs(c - cv2.GaussianBlur(c, (0, 0), 1.0))
    h, w = hp.shape
    gh, gw = h // b, w // b
    blk = hp[:gh * b, :gw * b].reshape(gh, b, gw, b).transpose(0, 2, 1, 3).reshape(
        gh, gw, b * b)
    g = np.median(blk, axis=2).astype(np.float32)
    if valid is not None:
        ok = valid[:gh * b, :gw * b].reshape(gh, b, gw, b).mean(axis=(1, 3)) >= 0.5
        g[~ok] = np.nan
    return g


def dsa_noise_map(grids: list[np.ndarray], shape: tuple[int, int], pixel_mm: float,
                  p: ContrastParams) -> np.ndarray | None:
    """DSA: relative noise σ map (median 1, floor 0.2, as :func:`noise_map`) from the
    block grids of the subtracted frames seen so far (:func:`dsa_noise_grid`; their
    element-wise median, so a block that contrast fills in one frame does not count),
    a 3 × 3-block median (a region's edge pixels), smoothed over ``noise_map_mm`` / 2.
    The quantum noise of a log subtraction is not uniform (5th to 95th percentile of the
    map, session DSA at 384²: 3–5× across a cervical AP, higher behind the spine than at
    the neck's sides; ≈ 3× across a caudal or sacroiliac AP, higher at the lumbar end;
    1.7× at a lumbar facet); one global σ had made noise blobs the contrast's "arrival"
    and a vessel's "pieces" (issue 21). None when no block carries signal."""
    if len(grids) == 1:
        g = grids[0]
    else:
        st = np.stack(grids)
        fin = np.isfinite(st)
        every, some = fin.all(axis=0), fin.any(axis=0)
        if (every == some).all():  # the same invalid blocks in every frame (= nanmedian)
            g = np.full(st.shape[1:], np.nan, np.float32)
            g[every] = np.median(st[:, every], axis=0)
        else:
            with warnings.catch_warnings():  # a block invalid in every frame stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                g = np.nanmedian(st, axis=0)
    if not np.isfinite(g).any():
        return None
    fill = float(np.nanmedian(g))
    g = np.where(np.isfinite(g), g, fill).astype(np.float32)
    g = ndi.median_filter(g, size=3, mode="nearest")
    h, w = shape
    r = cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR)
    r = cv2.GaussianBlur(r, (0, 0), max(p.noise_map_mm / pixel_mm / 2.0, 0.5))
    med = float(np.median(r))
    if med <= 0:
        return None
    return np.maximum(r / med, 0.2).astype(np.float32)


def _noise_sigma(img: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Robust σ (median absolute deviation) of a map, on every second (valid) pixel (the
    reference of :func:`.contrast_kernels.z_map`)."""
    v = img[::2, ::2] if valid is None else img[::2, ::2][valid[::2, ::2]]
    med = float(np.median(v))
    return 1.4826 * float(np.median(np.abs(v - med))) + 1e-6


def frame_features(cmap: np.ndarray, pixel_mm: float, t_s: float, p: ContrastParams,
                   origin: tuple[float, float] | None = None,
                   noise: np.ndarray | None = None, valid: np.ndarray | None = None
                   ) -> tuple[FrameFeatures, np.ndarray, np.ndarray]:
    """Features, opacified mask and z map (unit noise) of one contrast map; ``origin``:
    the first opacified point (row, col px) or None; ``noise``: relative noise σ map
    (:func:`noise_map`; None = uniform); ``valid``: the pixels that carry signal
    (:func:`unclipped`; None = all): the noise statistics use only them.

    The z map and the hysteresis threshold run in numba kernels (:mod:`.contrast_kernels`,
    bit for bit the numpy / scipy steps); the features are measured on the bounding box of
    the opacified region, in the same pixel order as on the whole image."""
    sm = cv2.GaussianBlur(cmap.astype(np.float32), (0, 0), max(p.smooth_mm / pixel_mm, 0.5))
    dev_med, z = K.z_map(sm, noise, valid)
    f = FrameFeatures(time_s=t_s)
    m, box = K.hysteresis(z, np.float32(p.z_threshold), np.float32(p.z_seed),
                          pixel_mm * pixel_mm, p.min_area_mm2)
    if box is None:
        return f, m, z
    y0, y1, x0, x1 = box
    mc = m[y0:y1, x0:x1]
    dev = sm[y0:y1, x0:x1] - dev_med  # float32, as the whole-image map
    px2 = pixel_mm * pixel_mm
    rr, cc = np.nonzero(mc)
    rr += y0
    cc += x0
    f.area_mm2 = float(rr.size * px2)
    f.signal = float(np.clip(dev[mc], 0, None).sum() * px2)
    f.height_mm = float((rr.max() - rr.min() + 1) * pixel_mm)
    f.breadth_mm = float((cc.max() - cc.min() + 1) * pixel_mm)
    # Zhang-Suen thinning is local (3x3) and zero-padded: a 1 px margin gives the same
    b0, b1, c0, c1 = max(y0 - 1, 0), y1 + 1, max(x0 - 1, 0), x1 + 1
    f.length_mm = float(max(int(skeletonize(m[b0:b1, c0:c1]).sum()), 1) * pixel_mm)
    f.width_mm = f.area_mm2 / max(f.length_mm, pixel_mm)
    if origin is None:  # this is the first opacified frame: the origin is its peak
        k = int(np.argmax(cmap[rr, cc]))
        origin = (float(rr[k]), float(cc[k]))
    f.spread_mm = float(np.hypot(rr - origin[0], cc - origin[1]).max() * pixel_mm)
    lab, n = ndi.label(mc)
    f.spread_ratio, f.eff_area_mm2 = spread_per_mass(dev, mc, pixel_mm, (y0, x0), (lab, n))
    f.near_ratio, f.near_eff_mm2 = spread_near(dev, mc, pixel_mm, origin, p.near_reach_mm,
                                               (y0, x0), (lab, n))
    return f, m, z


def first_point(cmap: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """The strongest opacified pixel (row, col) of the first frame contrast is seen in."""
    rr, cc = np.nonzero(mask)
    k = int(np.argmax(cmap[rr, cc]))
    return float(rr[k]), float(cc[k])
