"""Partial-volume acoustic shadows: what a bone edge leaves of a beam as wide as a real one.

Each scan line of the imager is one ray (``kernels.propagate``). With the loss of bone
taken from the label under the ray, a line grazing a bone edge either hits it (its column
below goes dark: the bone's attenuation and its surface's transmission) or misses it
(bright), so a probe moved by a few µm switched whole shadow columns on or off — under a
hand's tremor they flickered as if tissue moved (docs/us.md, docs/guidance_needle.md), and
a shadow's border was as sharp as one line. A real beam is 0.5–2 mm wide in plane and as
thick in elevation and covers the edge in part: the echoes behind it come from the part
of the beam the bone leaves.

Here bone and metal (labels flagged ``FLAG_BONE``) are two fields of the label slab,
blurred across the beam — along the slab's lateral and elevation axes, which are the
probe's (``medium.build_medium``), not along its depth — by Gaussians of the two-way
beam's lateral and elevation σ (their medians over the image depth: one blur per slab):
the fraction b of the beam's cross-section in bone, and the two-way amplitude loss
density (neper/mm): α·f inside, and −ln(1 − R) per voxel thickness on the surface voxels
(R against soft tissue, ``SOFT_Z_MRAYL``: the two-way transmission 1 − R of an
interface). Along each line (:func:`line_transmission`, trilinear reads) the part m of
the beam that has met bone (the largest b so far) carries the loss Λ/m (Λ: the blurred
loss summed along the line, the loss of the part in bone averaged over it) and the rest
passes: T = 1 − m + m·exp(−Λ/m). T is continuous in the probe's pose, a shadow's border
is the beam's own profile (−3 dB where half the beam meets the edge, darker inside: the
geometric partial volume, no diffraction), and a bone wider than the beam (m = 1) loses
what it lost before, so shadows stay at the noise floor. Assumptions: one blur width per
slab (the beam's median over depth), a surface's R against soft tissue of 1.63 MRayl
whatever lies on its other side, the surface's loss counted per voxel crossed (more for
a ray crossing it obliquely, as the transmission into bone falls with the angle of
incidence), and the part of the beam in bone taken as the largest b met so far.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from scipy import ndimage

from needleguide.us.beams import BeamSetup, lateral_fwhm_mm
from needleguide.us.label_field import corner_weight, voxel_coords
from needleguide.us.probe import USSettings
from needleguide.us.scatterers import line_point

SOFT_Z_MRAYL = 1.63  # the soft tissue a bone surface is taken to face (muscle)
NEPER_PER_DB = math.log(10.0) / 20.0
NO_LOSS = np.zeros((1, 1, 1, 2), np.float32)  # no bone in the slab


def loss_density(labels: np.ndarray, voxel_mm: float, isbone: np.ndarray,
                 lut_alpha_db_cm_mhz: np.ndarray, lut_z_mrayl: np.ndarray, f_mhz: float,
                 sigma_lat_mm: float, sigma_el_mm: float) -> np.ndarray:
    """The label slab ``labels`` (axes: lateral, depth, elevation; isotropic ``voxel_mm``)
    as (nx, nz, ny, 2) float32 (depth innermost: the lines run along it, so that their
    reads stay in few cache lines), blurred across the beam: [..., 0] the fraction of the
    beam in bone, [..., 1] the two-way amplitude loss density (neper/mm); ``NO_LOSS``
    when the slab holds no bone. ``isbone``/``lut_*``: per-label tables (256);
    ``sigma_*_mm``: the beam's two-way σ across (lateral) and through (elevation) the
    image plane."""
    if voxel_mm <= 0.0:
        raise ValueError(f"voxel_mm must be > 0 (got {voxel_mm})")
    lab = np.ascontiguousarray(labels.transpose(0, 2, 1))  # (lateral, elevation, depth)
    bone = isbone[lab]
    if not bone.any():
        return NO_LOSS
    # α (dB/cm/MHz) · f, two-way, per mm, in neper of amplitude
    per_mm = 2.0 * f_mhz * 0.1 * NEPER_PER_DB
    dens = np.where(bone, lut_alpha_db_cm_mhz[lab] * per_mm, 0.0).astype(np.float32)
    surface = bone & ~ndimage.binary_erosion(bone, border_value=1)
    z = lut_z_mrayl.astype(float)
    r = ((z - SOFT_Z_MRAYL) / (z + SOFT_Z_MRAYL)) ** 2
    surf_loss = (-np.log(np.clip(1.0 - r, 1e-6, 1.0)) / voxel_mm).astype(np.float32)
    dens[surface] += surf_loss[lab[surface]]
    sig = (max(sigma_lat_mm, 0.0) / voxel_mm, max(sigma_el_mm, 0.0) / voxel_mm, 0.0)
    out = np.empty(lab.shape + (2,), np.float32)
    for c, v in enumerate((bone.astype(np.float32), dens)):
        out[..., c] = ndimage.gaussian_filter(v, sig, mode="nearest", truncate=3.0)
    return out


BLOCK_SHIFT = 2  # blocks of 4 × 4 × 4 voxels
# a line whose beam is all in bone (m ≥ 1 − DARK) and whose part in bone is spent
# (exp(−Λ/m) < e⁻⁴⁰) stays at T = 1 − m ≤ DARK (−80 dB) to its end: not read further
DARK = 1e-4


def occupied_blocks(field: np.ndarray) -> np.ndarray:
    """uint8 (⌈n/4⌉ per axis, the field's order): 1 where a block of 4 × 4 × 4 voxels of
    ``field`` (:func:`loss_density`), or the voxel after it on any axis (the trilinear
    read's reach), holds bone; a small map (tens of kB) that :func:`line_transmission` reads
    first, so that it reads the large field (tens of MB) only near bone."""
    occ = field[..., 0] > 0.0
    bs = 1 << BLOCK_SHIFT
    shape = tuple(-(-n // bs) for n in occ.shape)
    pad = np.zeros(tuple(n * bs + 1 for n in shape), bool)
    pad[:occ.shape[0], :occ.shape[1], :occ.shape[2]] = occ
    # a voxel's trilinear read also touches i + 1, j + 1, k + 1
    grown = pad[:-1, :-1, :-1] | pad[1:, :-1, :-1] | pad[:-1, 1:, :-1] | pad[:-1, :-1, 1:] \
        | pad[1:, 1:, :-1] | pad[1:, :-1, 1:] | pad[:-1, 1:, 1:] | pad[1:, 1:, 1:]
    return grown.reshape(shape[0], bs, shape[1], bs, shape[2], bs).any(axis=(1, 3, 5)) \
        .astype(np.uint8)


@njit(cache=True, parallel=True, fastmath=True)
def line_transmission(field, blocks, M, origins, dirs, r_mm, back_mm, out):
    """``out`` (L, N) float32: the two-way amplitude transmission T of bone's partial
    volume to every range sample ``r_mm`` (L, N, patient mm along ``origins``/``dirs``),
    before the sample's own loss (module docstring). ``field``: :func:`loss_density` (``M``:
    its PatientToVoxel 3 × 4; ``blocks``: :func:`occupied_blocks`), read trilinearly
    (voxel centres at integer indices; nothing outside the slab) ``back_mm`` nearer the
    probe: half a voxel, so that the loss of a surface voxel, which the interpolation
    spreads over a voxel either side of its centre, begins at the surface instead of half a
    voxel before it and dims its echo."""
    L, N = r_mm.shape
    nx, nz, ny = field.shape[0], field.shape[1], field.shape[2]
    for l in prange(L):
        lam = 0.0  # the blurred loss so far (neper)
        m = 0.0  # the part of the beam that has met bone
        t_in = 1.0
        moved = False  # lam or m changed since t_in was worked out (an exp: only then)
        for k in range(N):
            if moved:
                a = lam / m
                t_in = math.exp(-a) if a < 40.0 else 0.0
                moved = False
            out[l, k] = 1.0 - m + m * t_in
            if t_in == 0.0 and m >= 1.0 - DARK:  # the rest of the line: under DARK
                for j in range(k + 1, N):
                    out[l, j] = 1.0 - m
                break
            x, y, z = line_point(origins, dirs, l, r_mm[l, k] - back_mm)
            fi, fj, fk = voxel_coords(M, x, y, z)
            i0, j0, k0 = math.floor(fi), math.floor(fj), math.floor(fk)
            if 0 <= i0 < nx - 1 and 0 <= j0 < ny - 1 and 0 <= k0 < nz - 1 and blocks[
                    int(i0) >> BLOCK_SHIFT, int(k0) >> BLOCK_SHIFT, int(j0) >> BLOCK_SHIFT]:
                b, d = _trilinear2(field, int(i0), int(j0), int(k0), fi - i0, fj - j0,
                                   fk - k0)
                if b > m:
                    m = min(b, 1.0)
                    moved = True
                if d > 0.0:
                    kn = k + 1 if k + 1 < N else k - 1
                    lam += d * abs(r_mm[l, kn] - r_mm[l, k])
                    moved = m > 0.0


@njit(cache=True, inline="always")
def _trilinear2(f, i, j, k, tx, ty, tz):
    """Both channels of ``f`` (nx, nz, ny, 2) at voxel (i + tx, j + ty, k + tz)."""
    out0 = 0.0
    out1 = 0.0
    for c in range(8):
        w = corner_weight(c, tx, ty, tz)
        ii, jj, kk = i + (c >> 2), j + ((c >> 1) & 1), k + (c & 1)
        out0 += w * f[ii, kk, jj, 0]
        out1 += w * f[ii, kk, jj, 1]
    return out0, out1


def slab_fields(labels: np.ndarray, voxel_mm: float, isbone: np.ndarray,
                lut_alpha_db_cm_mhz: np.ndarray, lut_z_mrayl: np.ndarray, settings: USSettings,
                setup: BeamSetup) -> tuple[np.ndarray, np.ndarray]:
    """:func:`loss_density` of a label slab for the probe of ``settings``/``setup`` (the
    blur: the medians over the image depth of its two-way lateral and elevation σ, mm) and
    its :func:`occupied_blocks` (once per slab: ``USImager.medium_for``)."""
    sig_lat = float(np.median(lateral_fwhm_mm(setup.depth_mm, settings))) / 2.3548
    field = loss_density(labels, voxel_mm, isbone, lut_alpha_db_cm_mhz, lut_z_mrayl,
                         settings.f_mhz, sig_lat, float(np.median(setup.el_sigma_mm)))
    return field, occupied_blocks(field)


__all__ = ["BLOCK_SHIFT", "DARK", "NO_LOSS", "SOFT_Z_MRAYL", "line_transmission",
           "loss_density", "occupied_blocks", "slab_fields"]
