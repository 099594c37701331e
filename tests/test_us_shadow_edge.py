"""Partial-volume shadows (``us/shadow_field.py``): bone's loss blurred across a beam as
wide as the probe's, so that a shadow's border is the beam's profile and moves
continuously with the probe instead of switching whole scan lines on or off."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide import geometry
from needleguide.scene import Scene
from needleguide.us import USImager, make_settings
from needleguide.us.beams import lateral_fwhm_mm
from needleguide.us.shadow_field import (
    BLOCK_SHIFT,
    NO_LOSS,
    SOFT_Z_MRAYL,
    loss_density,
    occupied_blocks,
)
from needleguide.us.testobjects import layered_patient

BONE, SOFT = 8, 3
ALPHA, Z_BONE, F_MHZ, VOX = 15.0, 7.1, 5.0, 0.3


def _luts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    isbone = np.zeros(256, bool)
    isbone[BONE] = True
    alpha = np.full(256, 0.5)
    alpha[BONE] = ALPHA
    z = np.full(256, SOFT_Z_MRAYL)
    z[BONE] = Z_BONE
    return isbone, alpha, z


def _slab() -> np.ndarray:
    lab = np.full((60, 40, 40), SOFT, np.uint8)
    lab[20:45, 10:30, 10:30] = BONE  # a block well inside the slab
    return lab


def test_loss_density_without_blur_is_the_bone_and_its_surface():
    """σ = 0: the bone's fraction is its indicator, the loss density α·f (two-way,
    neper/mm) inside and that plus −ln(1 − R)/voxel on the surface voxels."""
    isbone, alpha, z = _luts()
    f = loss_density(_slab(), VOX, isbone, alpha, z, F_MHZ, 0.0, 0.0)
    assert f.shape == (60, 40, 40, 2)  # (lateral, elevation, depth, 2)
    per_mm = ALPHA * F_MHZ * 2 * 0.1 * math.log(10) / 20
    r = ((Z_BONE - SOFT_Z_MRAYL) / (Z_BONE + SOFT_Z_MRAYL)) ** 2
    assert f[30, 15, 20, 1] == pytest.approx(per_mm, rel=1e-5)  # interior
    assert f[20, 15, 20, 1] == pytest.approx(per_mm - math.log(1 - r) / VOX, rel=1e-5)
    assert f[30, 15, 5, 0] == 0.0 and f[30, 15, 5, 1] == 0.0  # soft tissue above
    assert f[30, 15, 20, 0] == 1.0
    assert loss_density(np.full((8, 8, 8), SOFT, np.uint8), VOX, isbone, alpha, z, F_MHZ,
                        0.4, 0.8) is NO_LOSS


def test_loss_density_blurs_across_the_beam_only_and_keeps_the_loss():
    """Blurred along the lateral and elevation axes, not along depth; the sum across the
    beam (the loss a wide beam meets) is kept; the fraction stays within 0–1."""
    isbone, alpha, z = _luts()
    sharp = loss_density(_slab(), VOX, isbone, alpha, z, F_MHZ, 0.0, 0.0)
    blur = loss_density(_slab(), VOX, isbone, alpha, z, F_MHZ, 0.6, 0.9)
    np.testing.assert_allclose(blur[..., 1].sum(axis=(0, 1)), sharp[..., 1].sum(axis=(0, 1)),
                               rtol=1e-4)
    assert blur[..., 0].min() >= 0.0 and blur[..., 0].max() <= 1.0 + 1e-6
    assert blur[..., 1][:, :, :10].max() == 0.0  # nothing above the bone's top (depth 10)
    assert 0.3 < blur[20, 15, 20, 0] < 0.7  # half the beam at the lateral edge
    assert blur[8, 15, 20, 0] < 1e-3  # 12 voxels (3.6 mm = 6σ) beside it


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shape=st.tuples(st.integers(2, 19), st.integers(2, 19),
                                                    st.integers(2, 19)))
def test_occupied_blocks_cover_every_trilinear_read(seed, shape):
    """Every voxel whose trilinear read (it and the next on every axis) touches a
    non-zero fraction lies in a block marked occupied."""
    rng = np.random.default_rng(seed)
    field = np.zeros(shape + (2,), np.float32)
    field[..., 0] = (rng.random(shape) < 0.03) * rng.random(shape)
    blocks = occupied_blocks(field)
    nz = field[..., 0] > 0
    for i, j, k in np.ndindex(*(n - 1 for n in shape)):
        if nz[i:i + 2, j:j + 2, k:k + 2].any():
            assert blocks[i >> BLOCK_SHIFT, j >> BLOCK_SHIFT, k >> BLOCK_SHIFT] == 1


def _edge_att(moves_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The beam's two-way amplitude factor (``BeamData.att``) 7 mm under the top of a
    bone block whose lateral edge lies at x = 0, for a linear probe moved along its array
    by each of ``moves_mm``; the lines' x (mm) at the unmoved pose, the factor beside the
    bone and the lateral σ (mm) there."""
    p = layered_patient([("skin", 2.0), ("subcutaneous_fat", 5.0), ("paraspinal_muscle", 150.0)],
                        size_mm=(50.0, 40.0, 16.0), spacing_mm=0.3, bone_top_mm=14.0,
                        bone_x_mm=(0.0, 100.0))
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=30, output_px=128,
                      noise_db_re_face=-120.0)
    im = USImager(s, seed=1)
    g = im.setup.geom
    k = int(np.argmin(np.abs(g.r_mm - 20.5)))  # 7 mm into the bone (under the 0.5 mm press)
    out = []
    for dx in moves_mm:
        pose = geometry.frame_from_axes([dx, -0.5, 0.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0])
        out.append(im.beams(Scene(p, poses={"ProbeToPatient": pose})).att[:, k])
    x = g.origins[:, 0]
    free = float(np.median(out[0][x < -5.0]))
    sig = float(lateral_fwhm_mm(np.array([g.r_mm[k]]), s)[0]) / 2.3548
    return np.array(out), x, free, sig


def test_a_shadow_border_is_the_beams_profile_and_moves_continuously():
    """Under the edge of a bone block: a line whose beam is half on the bone keeps half
    the amplitude at the edge (geometric partial volume); the border (10 → 90 % of the loss)
    is about a beam wide (2.56 σ for a Gaussian profile); moved by 4 µm steps over two
    line spacings, no line's factor changes by more than 3 % of the unshadowed one (one
    ray per line switched a line's whole shadow at once); under the bone it is dark."""
    moves = np.arange(0.0, 0.6, 0.004)
    att, x, free, sig = _edge_att(moves)
    assert free > 0.005
    step = np.abs(np.diff(att, axis=0)).max() / free
    assert step < 0.03, step
    # the profile across the border at the unmoved pose, from every move (line x − move)
    xs = (x[None, :] + moves[:, None]).ravel()
    a = (att / free).ravel()
    near = np.abs(xs) < 3.0
    order = np.argsort(xs[near])
    xs, a = xs[near][order], a[near][order]
    x50 = xs[np.flatnonzero(a > 0.5)[-1]]
    assert abs(x50) < 0.3, x50  # the edge, within a voxel of the label grids (0.3, 0.25 mm)
    x90 = xs[np.flatnonzero(a > 0.9)[-1]]  # the last point still 90 % bright
    x10 = xs[np.flatnonzero(a > 0.1)[-1]]
    assert 0.5 * 2.56 * sig < x10 - x90 < 2.5 * 2.56 * sig, (x10 - x90, sig)
    assert att[0][x > 3.0].max() < 1e-3 * free
