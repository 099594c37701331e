"""The irradiated field: the collimator, narrowed to the part of the patient that exists.

A CT covers only a slab of the body. Beyond its cranial and caudal ends the volume is
extended with soft tissue (``volume._extend``) so that rays grazing the ends still see a
body, but nothing there is anatomy: a C-arm user would collimate to the region of
interest, so the shutters close on the scanned range. A pixel is kept when its ray meets
the plane through the isocentre perpendicular to the beam inside the scan's z range
(RAS superior, mm); the shutters are horizontal image lines when the beam is not tilted.
"""

from __future__ import annotations

import numpy as np

from needleguide.fluoro.carm import CArm


def scan_range_mask(carm: CArm, z_lo_mm: float, z_hi_mm: float) -> np.ndarray:
    """Boolean (rows, cols): pixels whose ray crosses the isocentre plane at a RAS z
    within [z_lo_mm, z_hi_mm]."""
    n = carm.geometry.pixels
    src, p00, dd = carm.pixel_rays()
    iso = np.asarray(carm.isocenter_mm, float)
    b = carm.beam
    pix = p00 + np.arange(n)[None, :, None] * dd[0] + np.arange(n)[:, None, None] * dd[1]
    d = pix - src
    t = ((iso - src) @ b) / (d @ b)
    z = src[2] + t * d[..., 2]
    return (z >= z_lo_mm) & (z <= z_hi_mm)


def field_mask(carm: CArm, patient) -> np.ndarray:
    """Collimator mask, and for a CT (a patient with ``hu``) the scanned range only."""
    mask = carm.collimator_mask()
    if getattr(patient, "hu", None) is not None:
        lo, hi = patient.bounds_mm()
        mask = mask & scan_range_mask(carm, float(lo[2]), float(hi[2]))
    return mask
