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
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def spread_per_mass(w: np.ndarray, mask: np.ndarray, pixel_mm: float
                    ) -> tuple[float, float]:
    """(spread ratio R_g²/A_eff, A_eff in mm²) of the main region of ``mask``; ``w``: the
    smoothed contrast map (any units, iodine positive). (nan, 0) when nothing is there."""
    if not mask.any():
        return float("nan"), 0.0
    lab, n = ndi.label(mask)
    wc = np.clip(w, 0.0, None)
    sums = ndi.sum(wc, lab, np.arange(1, n + 1))
    main = lab == int(np.argmax(sums)) + 1
    rr, cc = np.nonzero(main)
    wv = wc[rr, cc].astype(np.float64)
    tot = float(wv.sum())
    if tot <= 0:
        return float("nan"), 0.0
    peak = float(np.percentile(wv, 95))
    a_eff_px = tot / max(peak, 1e-12)
    r0 = float((rr * wv).sum() / tot)
    c0 = float((cc * wv).sum() / tot)
    rg2 = float((((rr - r0) ** 2 + (cc - c0) ** 2) * wv).sum() / tot)
    return rg2 / a_eff_px, a_eff_px * pixel_mm * pixel_mm
