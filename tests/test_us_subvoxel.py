"""Sub-voxel boundaries (``USSettings.speckle_subcell``, ``us/label_field.py``): a boundary
between label voxels is the 0.5 level of the interpolated labels, so it moves continuously
when the probe moves by a tremor's few µm, where the nearest voxel's staircase jumps by a
voxel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide import geometry
from needleguide.scene import Scene
from needleguide.us import USImager, make_settings
from needleguide.us.label_field import NO_MIX, crossing, label_at, mixed_blocks
from needleguide.us.medium import Medium
from needleguide.us.testobjects import layered_patient

SP = 0.4  # voxel (mm)


def _oblique(slope: float, offset_mm: float, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Labels 1 below / 2 above the plane y = slope·x + offset (voxel centres), and
    PatientToVoxel (3 × 4) for voxels of SP mm at the origin."""
    i = np.arange(n) * SP
    X, Y = np.meshgrid(i, i, indexing="ij")
    lab = np.where(Y > slope * X + offset_mm, 2, 1).astype(np.uint8)
    vol = np.ascontiguousarray(np.repeat(lab[:, :, None], 4, axis=2))
    M = np.ascontiguousarray(np.c_[np.eye(3) / SP, np.zeros(3)])
    return vol, M


def _crossings(vol, M, mixed, x0_mm: float, steps: int, step_mm: float) -> np.ndarray:
    """Where a line along +y at x = x0 + i·step crosses from label 1 to 2 (mm)."""
    out = np.empty(steps)
    dirs = np.array([[0.0, 1.0, 0.0]])
    for i in range(steps):
        o = np.array([[x0_mm + i * step_mm, 0.0, 1.5 * SP]])
        r = 0.0
        while label_at(vol, mixed, M, o[0, 0], r, o[0, 2]) == 1:
            r += 0.1
        lo = r - 0.1  # a 25 µm bracket: the bisections then resolve 0.4 µm
        while label_at(vol, mixed, M, o[0, 0], lo + 0.025, o[0, 2]) == 1:
            lo += 0.025
        out[i] = crossing(vol, mixed, M, o, dirs, 0, lo, lo + 0.025)
    return out


def test_mixed_blocks_are_the_blocks_holding_two_labels():
    rng = np.random.default_rng(3)
    vol = (rng.random((9, 7, 5)) < 0.2).astype(np.uint8)
    want = np.zeros_like(vol)
    b = vol[:-1, :-1, :-1]
    diff = np.zeros(b.shape, bool)
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                diff |= vol[di:di + 8, dj:dj + 6, dk:dk + 4] != b
    want[:-1, :-1, :-1] = diff
    assert np.array_equal(mixed_blocks(vol), want)


@settings(max_examples=12, deadline=None)
@given(slope=st.floats(0.2, 0.9), offset=st.floats(2.0, 4.0))
def test_an_oblique_boundary_moves_continuously(slope, offset):
    """2 µm steps across a whole step of an oblique boundary's voxel staircase: sub-voxel,
    the crossing moves by at most 4 µm per step (the 0.5 level of the interpolated
    staircase: flat over a voxel column, up to twice as steep across the step between
    two) and stays within the staircase's reach of the plane (half a voxel, and half a
    voxel's run × slope); the nearest voxel jumps by a step of the staircase."""
    vol, M = _oblique(slope, offset)
    mixed = mixed_blocks(vol)
    x0 = 6.0
    n = int(2.5 * SP / slope / 0.002)
    smooth = _crossings(vol, M, mixed, x0, n, 0.002)
    nearest = _crossings(vol, M, NO_MIX, x0, n, 0.002)
    x = x0 + 0.002 * np.arange(n)
    assert np.abs(np.diff(smooth)).max() < 0.005
    assert np.abs(smooth - (slope * x + offset)).max() < 0.5 * SP * (1.0 + slope) + 0.005
    assert np.abs(np.diff(nearest)).max() > 0.9 * SP  # a whole step


def _bone_views(subvoxel: bool, moves_mm, monkeypatch, tilt_deg: float = 12.0,
                probe: str = "linear") -> list[np.ndarray]:
    """Envelope² around the top of a bone block seen ``tilt_deg`` tilted (an oblique
    boundary in the image and in the probe-aligned label slab), one frame per move of the
    probe (mm along its array, along its beam) with one imager (the slab is rendered
    once, as while the probe is held); ``subvoxel`` False: the blended scatterers with the
    nearest voxel's labels (before sub-voxel boundaries)."""
    if not subvoxel:
        monkeypatch.setattr(Medium, "lookup", lambda self, sub: NO_MIX)
    p = layered_patient([("skin", 2.0), ("subcutaneous_fat", 6.0), ("paraspinal_muscle", 150.0)],
                        size_mm=(56.0, 50.0, 16.0), spacing_mm=SP, bone_top_mm=17.0)
    s = make_settings(probe=probe, frequency_mhz=8.9 if probe == "linear" else 4.0,
                      depth_mm=30 if probe == "linear" else 50, output_px=128,
                      speckle_subcell=True)
    im = USImager(s, seed=2)
    t = np.radians(tilt_deg)
    beam = np.array([np.sin(t), -np.cos(t), 0.0])
    lat = np.array([np.cos(t), np.sin(t), 0.0])
    r = im.setup.geom.r_mm
    out = []
    for a, b in moves_mm:
        pose = geometry.frame_from_axes(np.array([0.0, -0.5, 0.0]) + a * lat + b * beam, lat,
                                        beam)
        bd = im.beams(Scene(p, poses={"ProbeToPatient": pose}))
        out.append(bd.envelope[:, (r > 12) & (r < 24)].astype(np.float64) ** 2)
    monkeypatch.undo()
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.parametrize("probe,tilt", [("linear", 12.0), ("curvilinear", 30.0)])
def test_an_oblique_bone_echo_follows_a_10_um_move(monkeypatch, probe, tilt):
    """A real bone surface moves by 10 µm; its echo hardly changes (> 0.99). With the
    nearest voxel the linear view's staircase flips lines (0.992 laterally); the sector's
    lines cross the staircase at 30°, so both stay > 0.999 there."""
    moves = [(0.0, 0.0), (0.0, 0.0), (0.010, 0.0), (0.0, 0.010)]
    rho = {}
    for sub in (False, True):
        still, again, lateral, axial = _bone_views(sub, moves, monkeypatch, tilt, probe)
        assert _corr(still, again) == pytest.approx(1.0)
        rho[sub] = (_corr(still, lateral), _corr(still, axial))
    assert min(rho[True]) > 0.99, rho
    if probe == "linear":
        assert rho[True][0] > rho[False][0] + 0.004, rho


def test_blended_muscle_septa_keep_their_mean_and_follow_a_5_um_move():
    """The septa of muscle (+10 dB columns 0.9 mm across) ramp between columns with
    ``speckle_subcell``: the mean echo stays that of the nearest-cell septa (within the
    blend's 0.5 dB, test_us_subcell.py), and a 5 µm move no longer flips whole columns'
    samples by 10 dB (samples changing by > 6 dB: 3.1 % → 0.8 %, speckle nulls)."""
    from needleguide.us.testobjects import probe_on_top

    p = layered_patient([("paraspinal_muscle", 100.0)], size_mm=(56.0, 60.0, 16.0),
                        spacing_mm=SP)
    out = {}
    for sub in (False, True):
        s = make_settings(probe="linear", frequency_mhz=10.0, depth_mm=40, output_px=128,
                          tgc_auto_db_cm_mhz=0.8, noise_db_re_face=-120.0,
                          speckle_subcell=sub)
        im = USImager(s, seed=4)
        r = im.setup.geom.r_mm
        sel = (r > 8) & (r < 30)
        e = [im.beams(Scene(p, poses={"ProbeToPatient": probe_on_top(x_mm=dx,
                                                                      sagittal=False)}))
             .envelope[30:-30][:, sel].astype(np.float64) ** 2 for dx in (0.0, 0.005)]
        jump = np.abs(10 * np.log10((e[1] + 1e-12) / (e[0] + 1e-12)))
        out[sub] = (e[0].mean(), float((jump > 6.0).mean()))
    assert abs(10 * np.log10(out[True][0] / out[False][0])) < 0.5, out
    assert out[True][1] < 0.4 * out[False][1], out
