"""Labels of the medium at a point: the nearest voxel of the label slab, or — with
``USSettings.speckle_subcell`` — a boundary between voxels that moves continuously with the
point (sub-voxel interfaces).

Nearest voxel: a boundary is a staircase of 0.25–0.4 mm voxels, so a scan line moved by a
few µm across an oblique boundary sees it jump by a whole voxel (docs/us.md: under hand
tremor the interfaces light up as motion). Smooth: the label whose trilinear weight over the
8 voxel centres around the point is largest (for two labels: the 0.5 level of the
interpolated indicator, a continuous, piecewise-trilinear surface through the voxel
staircase's mid-points; a voxel-wide sheet stays a voxel wide). Only blocks of 2 × 2 × 2
voxels holding more than one label need the weights (``mixed_blocks``, once per slab);
elsewhere the lookup is the nearest voxel's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

NO_MIX = np.zeros((1, 1, 1), np.uint8)  # nearest-voxel labels
BISECTIONS = 6  # a crossing between two samples to 1/64 of their step


@njit(cache=True, parallel=True)
def mixed_blocks(vol):
    """uint8 mask (shape of ``vol``): 1 where the 2 × 2 × 2 block of voxels starting at
    (i, j, k) holds more than one label (0 on the last plane of every axis)."""
    nx, ny, nz = vol.shape
    out = np.zeros(vol.shape, np.uint8)
    for i in prange(nx - 1):
        for j in range(ny - 1):
            for k in range(nz - 1):
                v = vol[i, j, k]
                if (vol[i + 1, j, k] != v or vol[i, j + 1, k] != v or vol[i, j, k + 1] != v
                        or vol[i + 1, j + 1, k] != v or vol[i + 1, j, k + 1] != v
                        or vol[i, j + 1, k + 1] != v or vol[i + 1, j + 1, k + 1] != v):
                    out[i, j, k] = 1
    return out


@njit(cache=True, inline="always")
def corner_weight(c, tx, ty, tz):
    """The trilinear weight of corner ``c`` (bits: +i, +j, +k) at fractions (tx, ty, tz)."""
    return ((tx if c & 4 else 1.0 - tx) * (ty if c & 2 else 1.0 - ty)
            * (tz if c & 1 else 1.0 - tz))


@njit(cache=True, inline="always")
def _weight_of(vol, i0, j0, k0, tx, ty, tz, lab):
    """The trilinear weight of label ``lab`` over the 8 voxels from (i0, j0, k0)."""
    w = 0.0
    for d in range(8):
        if vol[i0 + (d >> 2), j0 + ((d >> 1) & 1), k0 + (d & 1)] == lab:
            w += corner_weight(d, tx, ty, tz)
    return w


@njit(cache=True, inline="always")
def block_at(vol, mixed, fi, fj, fk):
    """The 2 × 2 × 2 block of voxels from (i0, j0, k0) = ⌊(fi, fj, fk)⌋ (voxel
    coordinates) and its state: 1 it holds more than one label (``mixed``:
    :func:`mixed_blocks`), 0 one label, −1 it is not inside the volume or ``mixed`` is
    ``NO_MIX`` (then the nearest voxel's label is the one)."""
    nx, ny, nz = vol.shape
    i0 = int(math.floor(fi))
    j0 = int(math.floor(fj))
    k0 = int(math.floor(fk))
    if mixed.shape[0] > 1 and 0 <= i0 < nx - 1 and 0 <= j0 < ny - 1 and 0 <= k0 < nz - 1:
        return i0, j0, k0, 1 if mixed[i0, j0, k0] != 0 else 0
    return i0, j0, k0, -1


@njit(cache=True)
def _weighted_label(vol, mixed, fi, fj, fk):
    """The label of largest trilinear weight at voxel coordinates (fi, fj, fk), or the
    nearest voxel's near the volume's border, −1 outside (not inlined: it keeps the
    kernels that look labels up small to compile)."""
    i0, j0, k0, state = block_at(vol, mixed, fi, fj, fk)
    if state >= 0:
        if state == 0:
            return vol[i0, j0, k0]
        tx, ty, tz = fi - i0, fj - j0, fk - k0
        best = -1
        best_w = -1.0
        for c in range(8):
            lab = vol[i0 + (c >> 2), j0 + ((c >> 1) & 1), k0 + (c & 1)]
            w = _weight_of(vol, i0, j0, k0, tx, ty, tz, lab)
            if w > best_w or (w == best_w and lab < best):
                best = lab
                best_w = w
        return best
    return _nearest(vol, fi, fj, fk)


@njit(cache=True, inline="always")
def _nearest(vol, fi, fj, fk):
    i = int(math.floor(fi + 0.5))
    j = int(math.floor(fj + 0.5))
    k = int(math.floor(fk + 0.5))
    if i < 0 or j < 0 or k < 0 or i >= vol.shape[0] or j >= vol.shape[1] or k >= vol.shape[2]:
        return -1
    return vol[i, j, k]


@njit(cache=True, inline="always")
def voxel_coords(M, x, y, z):
    """(i, j, k) voxel coordinates (voxel centres at integers) of patient point (x, y, z)
    (mm; ``M``: PatientToVoxel 3 × 4)."""
    return (M[0, 0] * x + M[0, 1] * y + M[0, 2] * z + M[0, 3],
            M[1, 0] * x + M[1, 1] * y + M[1, 2] * z + M[1, 3],
            M[2, 0] * x + M[2, 1] * y + M[2, 2] * z + M[2, 3])


@njit(cache=True, inline="always")
def label_at(vol, mixed, M, x, y, z):
    """The label at (x, y, z) (patient mm; ``M``: PatientToVoxel 3 × 4), −1 outside the
    volume. ``mixed`` of shape (1, 1, 1) (``NO_MIX``): the nearest voxel; else
    :func:`mixed_blocks` of ``vol``: the label of largest trilinear weight (sub-voxel
    boundaries)."""
    fi, fj, fk = voxel_coords(M, x, y, z)
    if mixed.shape[0] > 1:
        return _weighted_label(vol, mixed, fi, fj, fk)
    return _nearest(vol, fi, fj, fk)


@njit(cache=True)
def label_margin(vol, mixed, M, x, y, z, lab):
    """How firmly label ``lab`` holds at (x, y, z) (patient mm) under :func:`label_at`
    with ``mixed``: its trilinear weight less the largest weight of any other label, in
    [−1, 1]: 0 on the sub-voxel boundary where the label under the point changes, 1 where
    the 8 voxels around agree on ``lab`` (with ``NO_MIX`` or off the mixed blocks: ±1, the
    nearest voxel's label is ``lab`` or not). Continuous across the boundary, so a quantity
    scaled by it does not jump when a µm move changes the label."""
    fi, fj, fk = voxel_coords(M, x, y, z)
    i0, j0, k0, state = block_at(vol, mixed, fi, fj, fk)
    if state >= 0:
        if state == 0:
            return 1.0 if vol[i0, j0, k0] == lab else -1.0
        tx, ty, tz = fi - i0, fj - j0, fk - k0
        other = 0.0
        for c in range(8):
            lc = vol[i0 + (c >> 2), j0 + ((c >> 1) & 1), k0 + (c & 1)]
            if lc != lab:
                other = max(other, _weight_of(vol, i0, j0, k0, tx, ty, tz, lc))
        return _weight_of(vol, i0, j0, k0, tx, ty, tz, lab) - other
    return 1.0 if _nearest(vol, fi, fj, fk) == lab else -1.0


@njit(cache=True)
def crossing_from(vol, mixed, M, o, d, lo, hi):
    """Where the label changes between ranges ``lo`` and ``hi`` (mm) along the line from
    ``o`` along ``d`` (3-tuples, patient mm; the label at ``hi`` is the one after the
    change): ``BISECTIONS`` bisections, the middle of the last bracket."""
    want = label_at(vol, mixed, M, o[0] + hi * d[0], o[1] + hi * d[1], o[2] + hi * d[2])
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        if label_at(vol, mixed, M, o[0] + mid * d[0], o[1] + mid * d[1],
                    o[2] + mid * d[2]) == want:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


@njit(cache=True, inline="always")
def crossing(vol, mixed, M, origins, dirs, l, lo, hi):
    """:func:`crossing_from` along scan line ``l``."""
    return crossing_from(vol, mixed, M, (origins[l, 0], origins[l, 1], origins[l, 2]),
                         (dirs[l, 0], dirs[l, 1], dirs[l, 2]), lo, hi)


__all__ = ["BISECTIONS", "NO_MIX", "block_at", "corner_weight", "crossing", "crossing_from",
           "label_at", "label_margin", "mixed_blocks", "voxel_coords"]
