"""The partial volume of edges under a scan line (``speckle_subcell``, ``us/partial_volume.py``).
A line grazing a bone's edge: the label under it changes from soft tissue to bone within a
µm move, so the bone's surface echo, the brightest in the image, used to switch on or off
under a hand's tremor; its share now follows the line's label margin
(``label_field.label_margin``), 0 where the label changes, so the echo fades in as the line
moves into the bone. Across a soft-tissue boundary the backscatter moves continuously
(``backscatter_blend``) instead of jumping with the label."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide import geometry
from needleguide.scene import Scene
from needleguide.us import USImager, make_settings
from needleguide.us import partial_volume as PV
from needleguide.us.label_field import NO_MIX, label_at, label_margin, mixed_blocks
from needleguide.us.partial_volume import backscatter_blend
from needleguide.us.testobjects import layered_patient


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), pts=st.lists(
    st.tuples(st.floats(0.0, 5.0), st.floats(0.0, 5.0), st.floats(0.0, 5.0)),
    min_size=1, max_size=20))
def test_the_margin_is_the_labels_own_sign(seed, pts):
    """The label that ``label_at`` reads holds a margin ≥ 0 there, every other label ≤ 0,
    within [−1, 1] (sub-voxel labels and the nearest voxel's)."""
    rng = np.random.default_rng(seed)
    vol = rng.integers(1, 4, (6, 6, 6)).astype(np.uint8)
    M = np.ascontiguousarray(np.c_[np.eye(3), np.zeros(3)])
    for mixed in (mixed_blocks(vol), NO_MIX):
        for x, y, z in pts:
            lab = label_at(vol, mixed, M, x, y, z)
            for other in (1, 2, 3):
                m = label_margin(vol, mixed, M, x, y, z, other)
                assert -1.0 - 1e-9 <= m <= 1.0 + 1e-9
                assert (m >= -1e-9) if other == lab else (m <= 1e-9), (lab, other, m)


def test_the_margin_is_continuous_across_a_boundary():
    """Across a two-label boundary in 1 µm steps the margin changes sign where the label
    does, by no more than the trilinear slope allows (2 / voxel per mm)."""
    vol = np.ones((6, 6, 6), np.uint8)
    vol[3:] = 2
    mixed = mixed_blocks(vol)
    M = np.ascontiguousarray(np.c_[np.eye(3) / 0.3, np.zeros(3)])  # 0.3 mm voxels
    xs = np.arange(0.6, 1.2, 0.001)
    m = np.array([label_margin(vol, mixed, M, x, 0.7, 0.8, 2) for x in xs])
    labs = np.array([label_at(vol, mixed, M, x, 0.7, 0.8) for x in xs])
    assert np.abs(np.diff(m)).max() <= 2.0 / 0.3 * 0.001 + 1e-6
    flip = np.flatnonzero(np.diff(labs) != 0)
    assert len(flip) == 1 and abs(m[flip[0]]) < 0.01
    assert m[0] == -1.0 and m[-1] == 1.0


def _edge_echo(moves_mm: np.ndarray, monkeypatch=None) -> np.ndarray:
    """The envelope's peak at the top of a bone block (14 mm deep) whose lateral edge lies
    at x = 0, on the 5 lines nearest it, for a linear probe (sub-voxel labels, no receiver
    noise) moved along its array by each of ``moves_mm``; ``monkeypatch``: the bone echo's
    share held at 1 (the label alone, as before)."""
    if monkeypatch is not None:
        def whole(*a):
            a[-2][:] = 1.0
        monkeypatch.setattr(PV, "bone_echo_gain", whole)
    p = layered_patient([("skin", 2.0), ("subcutaneous_fat", 5.0),
                         ("paraspinal_muscle", 150.0)], size_mm=(50.0, 40.0, 16.0),
                        spacing_mm=0.3, bone_top_mm=14.0, bone_x_mm=(0.0, 100.0))
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=30, output_px=128,
                      noise_db_re_face=-120.0, speckle_subcell=True)
    im = USImager(s, seed=1)
    g = im.setup.geom
    ln = int(np.argmin(np.abs(g.origins[:, 0] - 0.05)))
    k = np.flatnonzero((g.r_mm > 12.5) & (g.r_mm < 15.5))
    out = []
    for dx in moves_mm:
        pose = geometry.frame_from_axes([dx, -0.5, 0.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0])
        env = im.beams(Scene(p, poses={"ProbeToPatient": pose})).envelope
        out.append(env[ln - 2:ln + 3, k].max(axis=1))
    return np.array(out)


def test_a_grazed_bone_edge_fades_in(monkeypatch):
    """Moved in 2 µm steps while a line passes the edge's sub-voxel boundary, no line's
    surface echo changes by more than 3 % of the bone's whole echo; with the echo taken
    from the label alone, the line nearest the edge jumped by over 10 %."""
    moves = np.arange(0.0, 0.08, 0.002)
    now = _edge_echo(moves)
    step = np.abs(np.diff(now, axis=0)).max() / now.max()
    assert step < 0.03, step
    before = _edge_echo(moves, monkeypatch)
    jump = np.abs(np.diff(before, axis=0)).max() / before.max()
    assert jump > 0.1, jump


def test_the_backscatter_moves_across_a_soft_boundary():
    """Along a line crossing a fat / muscle boundary (0.3 mm voxels) in 1 µm steps: each
    tissue's own backscatter a voxel away, the root mean square of the two between,
    continuous (no step larger than the trilinear slope allows), while the label jumps;
    the bone voxels in the line's blocks do not take part (the mid-point is fat's and
    muscle's alone), and a bone sample keeps bone's own."""
    FAT, MUSCLE, BONE = 1, 2, 3
    vol = np.full((8, 6, 6), FAT, np.uint8)
    vol[4:] = MUSCLE
    vol[:, 3, 3] = BONE  # bone in a corner of the line's blocks (a quarter of the weight)
    M = np.ascontiguousarray(np.c_[np.eye(3) / 0.3, np.zeros(3)])
    lut = np.zeros(256, np.float32)
    lut[[FAT, MUSCLE, BONE]] = (0.2, 0.6, 3.0)
    soft = np.zeros(256, np.bool_)
    soft[[FAT, MUSCLE]] = True
    r = np.arange(0.3, 2.1, 0.001)[None, :]
    origins = np.array([[0.0, 0.75, 0.75]])
    dirs = np.array([[1.0, 0.0, 0.0]])
    labels = np.array([[label_at(vol, mixed_blocks(vol), M, x, 0.75, 0.75) for x in r[0]]],
                      np.uint8)
    out = np.empty(r.shape, np.float32)
    backscatter_blend(vol, mixed_blocks(vol), M, origins, dirs, r, labels, lut, soft, out)
    b = out[0]
    assert b[r[0] < 0.85].max() == np.float32(0.2) and b[r[0] > 1.2].min() == np.float32(0.6)
    assert np.all(np.diff(b) >= -1e-6)  # rises from fat's to muscle's
    # d/dx of the root mean square, steepest on fat's side: (0.6² − 0.2²) / (2 · 0.2) / voxel
    assert np.abs(np.diff(b)).max() < (0.36 - 0.04) / 0.4 / 0.3 * 0.001 * 1.05
    assert np.abs(np.diff(labels[0].astype(int))).max() == 1  # the label jumps once
    mid = b[np.argmin(np.abs(r[0] - 1.05))]  # half way between the voxel centres
    assert mid == pytest.approx(np.sqrt((0.2 ** 2 + 0.6 ** 2) / 2), rel=1e-3)
    bone = np.array([[BONE]], np.uint8)
    one = np.empty((1, 1), np.float32)
    backscatter_blend(vol, mixed_blocks(vol), M, origins, dirs, np.array([[1.05]]), bone,
                      lut, soft, one)
    assert one[0, 0] == np.float32(3.0)
    backscatter_blend(vol, NO_MIX, M, origins, dirs, r, labels, lut, soft, out)
    assert set(np.unique(out)) == {np.float32(0.2), np.float32(0.6)}  # nearest voxel: own


@pytest.mark.parametrize("args, field", [(["--frames", "1"], "--frames"),
                                         (["--tremor-um", "0"], "--tremor-um"),
                                         (["--tremor-um", "nan"], "--tremor-um")])
def test_flicker_script_refuses_bad_input(tmp_path, args, field):
    """``scripts/us_tremor_flicker.py``: bad numbers are refused before any rendering in
    one line naming the option (exit 2), and nothing is written."""
    png = tmp_path / "f.png"
    r = _flicker_script(*args, "--png", str(png))
    assert r.returncode == 2
    assert field in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())


def test_flicker_script_draws_the_counts(tmp_path):
    """Three tremor poses of the C2–C3 view: a PNG (frame and heat map side by side) that
    its reader opens, and a count printed."""
    import cv2

    png = tmp_path / "f.png"
    r = _flicker_script("--seed", "2701", "--frames", "3", "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert "pixel changes > 16 grey levels over 2 tremor steps" in r.stdout
    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] == 2 * img.shape[0]
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def _flicker_script(*args: str):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "us_tremor_flicker.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                          text=True, timeout=600)
