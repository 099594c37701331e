"""Reading a scanner's screen: where the imaging is, and what is not anatomy.

A real ultrasound file (or a video grabbed from a scanner) holds the whole screen: the
B-mode image, and around and over it header text, settings, depth scales, calipers,
colour bars, colour-flow boxes and logos. Only the B-mode pixels are anatomy.

- :func:`imaging_mask` finds the imaging area from the image itself: speckle, unlike text
  and graphics, is textured (few pixels have a zero gradient), filled (few black pixels)
  and grey (no colour). The largest such areas (a sector or a rectangle; two side by side
  in a dual view) are closed, filled and made convex; each is one :class:`Area`.
- :func:`graphics_mask` marks, inside an area, what is drawn rather than imaged: coloured
  pixels (colour flow, markers, colour bars) and thin bright strokes with sharp edges
  (text, calipers, box outlines, dotted lines), which speckle never has.
- :func:`bmode` gives the cleaned grey B-mode of an area: graphics and everything outside
  the area set to black, which the needle analyser treats as outside the scan sector.

All thresholds are on 8-bit grey levels (0–255) and pixels; no spacing is needed.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

COLOUR_MIN = 40  # max - min channel (8-bit) above which a pixel is colour, not grey
FLAT_MAX = 1  # |gx| + |gy| at or below this is a flat pixel (graphics, black, bars)
WIN_PX = 15  # window for the texture and fill measures


@dataclasses.dataclass(frozen=True)
class Area:
    """One imaging area on the screen: bounding box ``x0, y0, x1, y1`` (pixels, inclusive)
    and its convex mask (same shape as the box)."""

    x0: int
    y0: int
    x1: int
    y1: int
    mask: np.ndarray

    @property
    def box(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def grey_u8(img: np.ndarray) -> np.ndarray:
    """8-bit grey of an RGB or grey image (any integer or float range)."""
    a = np.asarray(img)
    if a.ndim == 3:
        a = cv2.cvtColor(np.ascontiguousarray(to_u8(a)[..., :3]), cv2.COLOR_RGB2GRAY)
    return to_u8(a)


def to_u8(a: np.ndarray) -> np.ndarray:
    """Scale to uint8: uint8 as is; other integers by their maximum; floats in [0, 1]."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    hi = float(a.max()) if a.size else 0.0
    return (a.astype(np.float32) * (255.0 / hi) + 0.5).astype(np.uint8) if hi > 255 \
        else a.astype(np.uint8)


def colour_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are coloured (colour flow, markers, colour bars), not grey."""
    if rgb.ndim != 3:
        return np.zeros(rgb.shape, bool)
    c = to_u8(rgb)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    hi = cv2.max(cv2.max(r, g), b)
    lo = cv2.min(cv2.min(r, g), b)
    return cv2.subtract(hi, lo) > COLOUR_MIN


def _texture(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share of flat pixels, share of non-black pixels) in a WIN_PX window."""
    gi = g.astype(np.int16)
    grad = np.zeros(g.shape, np.int16)
    grad[:, :-1] += np.abs(np.diff(gi, axis=1))
    grad[:-1, :] += np.abs(np.diff(gi, axis=0))
    flat = cv2.blur((grad <= FLAT_MAX).astype(np.float32), (WIN_PX, WIN_PX))
    filled = cv2.blur((g > 6).astype(np.float32), (WIN_PX, WIN_PX))
    return flat, filled


def imaging_mask(img: np.ndarray, min_share: float = 0.04,
                 max_areas: int = 2) -> list[Area]:
    """The imaging areas of a screen (RGB or grey; one frame or a few stacked on axis 0,
    whose mean is used), largest first; at most ``max_areas``, each at least
    ``min_share`` of the screen and a quarter of the largest. Empty when nothing on the
    screen looks like B-mode."""
    a = np.asarray(img)
    if a.ndim == 4 or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        a = np.mean(np.stack([to_u8(x) for x in a[:8]]), axis=0).astype(np.uint8)
    g = grey_u8(a)
    col = cv2.dilate(colour_mask(a).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    flat, filled = _texture(g)
    speckle = (flat < 0.35) & (filled > 0.6) & ~col
    # colour flow sits inside B-mode: colour pixels surrounded by speckle count as imaging
    k = max(5, int(round(0.02 * max(g.shape))))
    body = cv2.morphologyEx(speckle.astype(np.uint8), cv2.MORPH_OPEN,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    body = cv2.morphologyEx(body, cv2.MORPH_CLOSE,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3 * k, 3 * k)))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(body, connectivity=8)
    if n <= 1:
        return []
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas)
    out: list[Area] = []
    for i in order[:max_areas]:
        if areas[i] < min_share * g.size or areas[i] < 0.25 * areas[order[0]]:
            break
        pts = cv2.findNonZero((lab == i + 1).astype(np.uint8))
        hull = cv2.convexHull(pts)
        m = np.zeros(g.shape, np.uint8)
        cv2.fillConvexPoly(m, hull, 1)
        x, y, w, h = cv2.boundingRect(hull)
        out.append(Area(x, y, x + w - 1, y + h - 1, m[y:y + h, x:x + w].astype(bool)))
    return sorted(out, key=lambda r: (r.x0, r.y0))


def graphics_mask(img: np.ndarray) -> np.ndarray:
    """What is drawn, not imaged, in an imaging area (RGB or grey): colour pixels, and
    thin bright strokes with sharp edges — a pixel at least 60 grey levels above the
    opening of the image with a 3×3 square (structures at most 2 px wide: text, caliper
    crosses, outlines, dots) that is also near-saturated or has at least 6 such pixels in
    its 7×7 neighbourhood (a stroke, not a lone speckle grain) — grown by one pixel."""
    g = grey_u8(img)
    opened = cv2.morphologyEx(g, cv2.MORPH_OPEN, _K3)
    thin = (cv2.subtract(g, opened) >= 60).astype(np.uint8)
    count = cv2.boxFilter(thin, cv2.CV_16U, (7, 7), normalize=False)
    drawn = (thin > 0) & ((g >= 200) | (count >= 6))
    if img.ndim == 3:
        drawn |= colour_mask(img)
    return cv2.dilate(drawn.view(np.uint8), _K3) > 0


_K3 = np.ones((3, 3), np.uint8)


def bmode(img: np.ndarray, area: Area) -> np.ndarray:
    """The cleaned 8-bit grey B-mode of ``area`` on the screen ``img``: graphics and the
    pixels outside the area's mask are black."""
    crop = img[area.y0:area.y1 + 1, area.x0:area.x1 + 1]
    g = grey_u8(crop).copy()
    g[~area.mask | graphics_mask(crop)] = 0
    return g


def full_area(shape: tuple[int, ...]) -> Area:
    """The whole image as one area (an image that is all imaging, e.g. our B-mode)."""
    h, w = shape[:2]
    return Area(0, 0, w - 1, h - 1, np.ones((h, w), bool))


__all__ = ["Area", "bmode", "colour_mask", "full_area", "graphics_mask", "grey_u8",
           "imaging_mask", "to_u8"]
