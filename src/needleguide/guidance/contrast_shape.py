"""Spread of the opacification per unit of iodine: the early shape cue of a vessel.

Injected into a vessel, contrast is carried along the lumen within a transit time: a thin,
diluted, far-reaching line (or a plexus of lines) appears at once. Outside a vessel it
stays as a compact collection around the tip that grows with the injected volume.

For the main opacified region (the connected part holding most of the signal) of one
frame, with w the smoothed contrast (clipped at 0) inside it:

* effective area A_eff = Σw / w₉₅ (mm²): the area the iodine would cover at its own
  95th-percentile density (a thin diluted line has a low density for its extent);
* spread ratio = R_g² / A_eff, with R_g² the w-weighted variance of the pixel positions
  about their centroid (mm²). Dimensionless: a disc gives 1/(2π) ≈ 0.16, any compact
  blob 0.2–0.3 whatever its size, a line of length L and width d about L / (12·d).

A vessel shows a high ratio while A_eff is still small (little iodine); a collection that
grows into a column (intrathecal, along the sac) reaches a high ratio only once it holds
much iodine.

A vessel that dips in and out of the beam direction is seen in pieces: where it runs along
the beam it is dense, where it crosses it it is faint, below the threshold. The same
ratio over every opacified region whose centroid lies within ``reach_mm`` of the first
opacified point (:func:`spread_near`) sees two dense pieces 15 mm apart as the one
far-reaching, low-iodine vessel they are; an extravascular collection grows contiguously
from the tip.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def spread_per_mass(w: np.ndarray, mask: np.ndarray, pixel_mm: float,
                    offset: tuple[int, int] = (0, 0),
                    labels: tuple[np.ndarray, int] | None = None) -> tuple[float, float]:
    """(spread ratio R_g²/A_eff, A_eff in mm²) of the main region of ``mask``; ``w``: the
    smoothed contrast map (any units, iodine positive). (nan, 0) when nothing is there.
    ``w`` and ``mask`` may be a crop (holding all of the mask) whose first pixel is at
    ``offset`` (row, col) of the image; ``labels``: ``ndi.label(mask)`` if known."""
    if not mask.any():
        return float("nan"), 0.0
    lab, n = ndi.label(mask) if labels is None else labels
    wc = np.clip(w, 0.0, None)
    sums = ndi.sum(wc, lab, np.arange(1, n + 1))
    return _ratio(wc, lab == int(np.argmax(sums)) + 1, pixel_mm, offset)


def spread_near(w: np.ndarray, mask: np.ndarray, pixel_mm: float,
                origin: tuple[float, float], reach_mm: float,
                offset: tuple[int, int] = (0, 0),
                labels: tuple[np.ndarray, int] | None = None) -> tuple[float, float]:
    """(spread ratio, A_eff in mm²) over every region of ``mask`` whose ``w``-weighted
    centroid lies within ``reach_mm`` of ``origin`` (row, col in px of the image); (nan, 0)
    when none. ``offset`` / ``labels``: as :func:`spread_per_mass`."""
    if not mask.any():
        return float("nan"), 0.0
    lab, n = ndi.label(mask) if labels is None else labels
    wc = np.clip(w, 0.0, None)
    idx = np.arange(1, n + 1)
    cent = _centers(wc, lab, idx, offset)
    near = [i for i, c in zip(idx, cent, strict=True) if np.all(np.isfinite(c)) and
            np.hypot(c[0] - origin[0], c[1] - origin[1]) * pixel_mm <= reach_mm]
    if not near:
        return float("nan"), 0.0
    return _ratio(wc, np.isin(lab, near), pixel_mm, offset)


def _centers(wc: np.ndarray, lab: np.ndarray, idx: np.ndarray, offset: tuple[int, int]
             ) -> list[tuple[float, float]]:
    """``ndi.center_of_mass(wc, lab, idx)`` in image coordinates for a crop at ``offset``
    (the same float64 products and per-label sums in raster order, so the same bits)."""
    h, w = wc.shape
    norm = ndi.sum_labels(wc, lab, idx)
    rows = np.arange(offset[0], offset[0] + h)[:, None].astype(float)
    cols = np.arange(offset[1], offset[1] + w)[None, :].astype(float)
    cr = ndi.sum_labels(wc * rows, lab, idx) / norm
    cc = ndi.sum_labels(wc * cols, lab, idx) / norm
    return [tuple(v) for v in np.array([cr, cc]).T]


def _ratio(wc: np.ndarray, region: np.ndarray, pixel_mm: float,
           offset: tuple[int, int] = (0, 0)) -> tuple[float, float]:
    rr, cc = np.nonzero(region)
    wv = wc[rr, cc].astype(np.float64)
    rr = rr + offset[0]
    cc = cc + offset[1]
    tot = float(wv.sum())
    if tot <= 0:
        return float("nan"), 0.0
    a_eff_px = tot / max(float(np.percentile(wv, 95)), 1e-12)
    r0 = float((rr * wv).sum() / tot)
    c0 = float((cc * wv).sum() / tot)
    rg2 = float((((rr - r0) ** 2 + (cc - c0) ** 2) * wv).sum() / tot)
    return rg2 / a_eff_px, a_eff_px * pixel_mm * pixel_mm
