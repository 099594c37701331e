"""Partial volume of the labels under a scan line, for the echoes (``speckle_subcell``).

Each scan line is one ray, and with sub-voxel labels (``label_field``) the label of a
sample is the one of largest trilinear weight: it changes where a µm move carries the
sample across the 0.5 level of the interpolated labels. What the label alone decides then
switches at once: a line that grazes a bone's edge enters it for a few samples or not at
all (its surface echo, the brightest in the image, blinked under a hand's tremor), and a
line that runs along a soft-tissue boundary (the side of a facet capsule's dome) moves the
crossing by a dozen samples, each of which changes its speckle's brightness from one
tissue's to the other's. A real beam, 0.5–2 mm wide, covers such edges in part and its
echoes change by a little. Here (docs/us.md):

- :func:`bone_echo_gain`: the share of a bone's echoes a run of bone samples gives, from
  how deep the line goes into it (its label margin, ``label_field.label_margin``, 0 where
  the label changes): a grazed edge's echo fades in as the line moves into the bone;
- :func:`backscatter_blend`: the diffuse backscatter of a soft-tissue sample as the power
  average of its soft-tissue voxels' backscatter, weighted as the label is (trilinear),
  so that it moves continuously across a boundary instead of jumping with the label.

Shadows are continuous already (``shadow_field``). Interface echoes still follow the
label: their position continuously (``label_field.crossing``), their strength with R.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from needleguide.us.label_field import block_at, corner_weight, label_margin, voxel_coords
from needleguide.us.scatterers import line_point

BONE_FULL_MARGIN = 0.5  # bone_echo_gain: a bone run's echoes whole from this label margin
BONE_WINDOW_MM = 0.5  # ... reached within this range of the line's entry into the bone
ALL_ECHO = np.ones((1, 1), np.float32)  # bone_echo_gain off (nearest-voxel labels)
NO_BLEND = np.ones((1, 1), np.float32)  # backscatter_blend off: the label's own


@njit(cache=True, parallel=True)
def bone_echo_gain(vol, mixed, M, origins, dirs, r_mm, label, isbone, full_margin, window_mm,
                   out, zq):
    """``out`` (L, N) float32: the share of its echoes that each run of bone samples along a
    line gives (1 off bone): the largest label margin of the run's samples, divided by
    ``full_margin`` and clipped to [0, 1] — a quarter voxel (margin 0.5) past a bone's edge
    the echo is whole, at the edge nothing. ``label``: the lines' labels
    (``kernels.sample_medium``, from the same ``vol``, ``mixed``, ``M`` at ranges
    ``r_mm`` (L, N)); ``isbone``: per-label table (256). ``zq`` (L, N): the lines'
    impedance (MRayl), blended in place on a run with a share g below 1 from the sample
    before it to the bone's, z₀ + g·(z − z₀) (the smoothed impedance that gives the
    interfaces' normals, there and on the lines beside it)."""
    L, N = label.shape
    for l in prange(L):
        k = 0
        while k < N:
            if not isbone[label[l, k]]:
                out[l, k] = 1.0
                k += 1
                continue
            k0 = k
            best = -1.0
            while k < N and isbone[label[l, k]]:
                if best < full_margin and r_mm[l, k] - r_mm[l, k0] <= window_mm:
                    x, y, z = line_point(origins, dirs, l, r_mm[l, k])
                    best = max(best, label_margin(vol, mixed, M, x, y, z, label[l, k]))
                k += 1
            g = min(1.0, max(0.0, best / full_margin))
            z0 = zq[l, k0 - 1] if k0 > 0 else zq[l, k0]
            for j in range(k0, k):
                out[l, j] = g
                if g < 1.0:
                    zq[l, j] = z0 + g * (zq[l, j] - z0)


@njit(cache=True, parallel=True)
def backscatter_blend(vol, mixed, M, origins, dirs, r_mm, label, lut_bs, soft, out):
    """``out`` (L, N) float32: the backscatter amplitude of every sample. A sample whose
    label is ``soft`` (per-label table, 256: not bone, air or gel), in a block of voxels
    holding more than one label (``mixed``, ``label_field.mixed_blocks``; ``NO_MIX``: none
    is): the root of the mean of ``lut_bs``² over the
    block's soft voxels, weighted by their trilinear weights (the speckle's power of the
    tissues the beam covers there, continuous in the point); elsewhere ``lut_bs`` of its
    label."""
    L, N = label.shape
    sub = mixed.shape[0] > 1  # ``NO_MIX``: the labels' own
    for l in prange(L):
        for k in range(N):
            lab = label[l, k]
            out[l, k] = lut_bs[lab]
            if not (sub and soft[lab]):
                continue
            x, y, z = line_point(origins, dirs, l, r_mm[l, k])
            fi, fj, fk = voxel_coords(M, x, y, z)
            i0, j0, k0, state = block_at(vol, mixed, fi, fj, fk)
            if state != 1:
                continue
            tx, ty, tz = fi - i0, fj - j0, fk - k0
            num = 0.0
            den = 0.0
            for c in range(8):
                lc = vol[i0 + (c >> 2), j0 + ((c >> 1) & 1), k0 + (c & 1)]
                if soft[lc]:
                    w = corner_weight(c, tx, ty, tz)
                    num += w * lut_bs[lc] * lut_bs[lc]
                    den += w
            if den > 0.0:
                out[l, k] = math.sqrt(num / den)


def edge_shares(vol: np.ndarray, mixed: np.ndarray, M: np.ndarray, origins: np.ndarray,
                dirs: np.ndarray, r_mm: np.ndarray, label: np.ndarray, zimp: np.ndarray,
                frac: np.ndarray, isbone: np.ndarray, lut_bs: np.ndarray, soft: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the lines sampled by ``kernels.sample_medium`` (labels ``label``, impedance
    ``zimp`` (MRayl), interface fractions ``frac``, all (L, N), at ranges ``r_mm`` (mm)):
    the impedance to smooth for the interfaces' normals (with :func:`bone_echo_gain`'s
    blend, then averaged over each range step at its crossing: continuous in the pose),
    bone's echo share (:func:`bone_echo_gain`) and the backscatter
    (:func:`backscatter_blend`), for ``kernels.propagate``."""
    L, N = label.shape
    gb = np.empty((L, N), np.float32)
    zb = zimp.copy()
    bone_echo_gain(vol, mixed, M, origins, dirs, r_mm, label, isbone, BONE_FULL_MARGIN,
                   BONE_WINDOW_MM, gb, zb)
    bsq = np.empty((L, N), np.float32)
    backscatter_blend(vol, mixed, M, origins, dirs, r_mm, label, lut_bs, soft, bsq)
    zb[:, 1:] = frac[:, 1:] * zb[:, :-1] + (1.0 - frac[:, 1:]) * zb[:, 1:]
    return zb, gb, bsq


__all__ = ["ALL_ECHO", "BONE_FULL_MARGIN", "BONE_WINDOW_MM", "NO_BLEND", "backscatter_blend",
           "bone_echo_gain", "edge_shares"]
