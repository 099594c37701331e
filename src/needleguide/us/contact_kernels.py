"""Numba kernels of the probe contact (``USImager.contact_map``): where the skin and the
first bone lie along every scan line, and the displacement that lays the soft tissue
above the bone onto the probe face (a uniform strain along each line)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from needleguide.us.label_field import crossing, label_at


@njit(cache=True, parallel=True)
def contact_ranges(vol, mixed, M, origins, dirs, r0_mm, dr_mm, n, isbone, skin_run, out_skin,
                   out_bone):
    """Per line, the range of the skin (the first of ``skin_run`` body samples, searching
    from ``r0_mm`` < 0, i.e. behind the face) and of the first bone after it (NaN if none
    within ``n`` samples). ``mixed``: the label lookup (``label_field.label_at``); with
    sub-voxel boundaries (not ``NO_MIX``) both ranges are bisected between the samples, so
    that they move continuously with the probe."""
    L = origins.shape[0]
    refine = mixed.shape[0] > 1
    for l in prange(L):
        run = 0
        skin = np.nan
        bone = np.nan
        found = False
        for k in range(n):
            r = r0_mm + k * dr_mm
            lab = label_at(vol, mixed, M, origins[l, 0] + r * dirs[l, 0],
                           origins[l, 1] + r * dirs[l, 1], origins[l, 2] + r * dirs[l, 2])
            if lab < 0:
                lab = 0
            if not found:
                if lab != 0:
                    run += 1
                    if run >= skin_run:
                        skin = r - (run - 1) * dr_mm
                        if refine and (run < k + 1):
                            skin = crossing(vol, mixed, M, origins, dirs, l, skin - dr_mm, skin)
                        found = True
                else:
                    run = 0
            elif isbone[lab]:
                bone = crossing(vol, mixed, M, origins, dirs, l, r - dr_mm, r) if refine else r
                break
        out_skin[l] = skin
        out_bone[l] = bone


@njit(cache=True, parallel=True, fastmath=True)
def contact_range_map(r_mm, skin, fixed, out):
    """out[l, k]: undeformed range of image range ``r_mm[k]`` on line l — a uniform strain
    from the skin (at range ``skin[l]``, drawn at 0) to ``fixed[l]`` (undisplaced), the
    identity below."""
    L = out.shape[0]
    N = r_mm.shape[0]
    for l in prange(L):
        s = skin[l]
        b = fixed[l]
        q = 1.0 - s / b
        for k in range(N):
            r = r_mm[k]
            out[l, k] = s + r * q if r < b else r
