"""Thin lines *inside* the opacified region: the early cue of the venous plexus.

Injected into the epidural venous plexus, contrast is first seen as a compact pool at the
tip; thin arms along the canal and across grow out of it from ≈ 0.3 s after arrival, and
once they pass the opacification threshold they are part of the opacified region (the
*ridge* cue of :mod:`.contrast_line` counts only ridges beyond it, the *shape* cue waits
until the arms hold enough of the iodine: 0.7–1.0 s). A collection outside a vessel (an
early intrathecal column, an epidural or facet fill, a muscle cloud) is smooth inside:
its density falls off over ≥ 5 mm, it has no thin lines.

The detector averages the noise-normalised z map along short segments (``length_mm``,
Gaussian cross profile σ ``width_mm``) at ``n_angles`` orientations and compares each
centre line with the two parallel lines ``offset_mm`` to either side (the smaller of the
two differences, as :func:`.contrast_line.ridge_z`). A *thin* line is one whose sides
hold at most ``1 − thin`` of its own density (difference ≥ ``thin`` × the centre line's
mean): the broad crest of a pool or a column (sides at 70–90 % of the centre) does not
pass, a 2–4 mm arm over a thinner background does. Normalised by its robust noise (MAD
over the search window), thin-line pixels pass ``z_low`` with the map itself above
``z_pixel``, in connected sets reaching ``z_high`` and coming within ``reach_mm`` of the
first opacified point. The cue is their skeleton length (mm at the detector) *inside* the
opacified region.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.morphology import skeletonize

from needleguide.guidance.contrast_line import LineParams, line_sets, ridge_z_reference


@dataclass(frozen=True)
class LatticeParams(LineParams):
    """Thin-line detector geometry (mm at the detector) and thresholds (*assumptions*,
    tuned on seeds 0–60 of the contrast evaluation, issue 21): shorter segments and a
    closer side offset than the ridge cue's (24 mm, 5 mm) — the plexus arms are short
    and run between dense parts; ``thin``: the smallest centre-minus-side difference, as a
    share of the centre line's mean density (0.5: on seeds 0–60 the 3-frame sustained
    length stays ≤ 21 mm on every negative; without the test ≤ 238 mm, the crests of
    pools and columns). The other fields are the ridge detector's (:class:`LineParams`)."""

    length_mm: float = 12.0
    offset_mm: float = 3.5
    thin: float = 0.5


def thin_line_z(zn: np.ndarray, pixel_mm: float, lp: LatticeParams) -> np.ndarray:
    """Thin-line z map (max over orientations; −inf where no orientation is thin) of a
    noise-normalised contrast map ``zn`` (iodine positive, unit noise)."""
    return ridge_z_reference(zn, pixel_mm, lp, thin=lp.thin)


def lattice_length(znorm: np.ndarray, region: np.ndarray, pixel_mm: float,
                   origin: tuple[float, float], lp: LatticeParams | None = None
                   ) -> tuple[float, np.ndarray]:
    """Skeleton length (mm at the detector) of the thin lines inside ``region`` (the
    opacified mask) that come within ``reach_mm`` of ``origin`` (row, col px), searched
    in a ``window_mm`` box around it, and their mask (full image). Lines within a kernel
    radius of the image border are ignored; images finer than ``min_pixel_mm`` are
    searched at a coarser pixel (area-averaged by an integer factor)."""
    lp = lp or LatticeParams()
    h, w = znorm.shape
    out = np.zeros((h, w), bool)
    r = int(round(lp.window_mm / pixel_mm))
    r0, c0 = int(round(origin[0])), int(round(origin[1]))
    y0, y1, x0, x1 = max(r0 - r, 0), min(r0 + r + 1, h), max(c0 - r, 0), min(c0 + r + 1, w)
    k = max(1, int(np.ceil(lp.min_pixel_mm / pixel_mm - 1e-6)))
    y1, x1 = y0 + (y1 - y0) // k * k, x0 + (x1 - x0) // k * k
    if (y1 - y0) // k < 8 or (x1 - x0) // k < 8 or not region[y0:y1, x0:x1].any():
        return 0.0, out
    zn = znorm[y0:y1, x0:x1].astype(np.float32)
    reg = region[y0:y1, x0:x1]
    if k > 1:
        size = ((x1 - x0) // k, (y1 - y0) // k)
        zn = cv2.resize(zn, size, interpolation=cv2.INTER_AREA)
        reg = cv2.resize(reg.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
    px = pixel_mm * k
    m = line_sets(thin_line_z(zn, px, lp), zn, px, lp, (y0, x0, k, h, w), origin)
    if m is None:
        return 0.0, out
    sk = skeletonize(m) & reg
    if k > 1:
        m = np.repeat(np.repeat(m, k, axis=0), k, axis=1)
    out[y0:y1, x0:x1] = m
    return float(sk.sum() * px), out
