"""A still probe under a moving needle (``USImager.beams``): what only the pose decides is
kept from the frame before and only the scatterers the needle's drag moves are drawn
again (``scatterers.rescatter``); the frames are those of an imager that draws every frame
afresh, and the samples left out are those the field does not move; a still needle's
field is not drawn again."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide.scene import Needle, Scene
from needleguide.us import USImager, make_settings
from needleguide.us.testobjects import layered_patient, probe_on_top
from needleguide.us.tissue_motion import drag_magnitude, drag_near, drag_params, near_setup

unit = st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)).filter(
    lambda v: np.linalg.norm(v) > 0.2)


@settings(max_examples=200, deadline=None)
@given(unit, unit, st.tuples(*[st.floats(-15, 15)] * 3), st.floats(0.0, 6.0),
       st.floats(5.0, 60.0), st.floats(-1.0, 1.0))
def test_samples_left_out_are_not_moved(axis, elev, pt, ek, inserted, q):
    """Not near ⇒ the field is 0 on every elevation plane within ±ek of the sample."""
    p = drag_params(np.zeros(3), axis, inserted, q)
    e = np.asarray(elev, float) / np.linalg.norm(elev)
    en, c2, reach2 = near_setup(e, p)
    x, y, z = pt
    near, s0, r0, de = drag_near(x, y, z, ek, en, c2, reach2, e, p)
    for off in np.linspace(-ek, ek, 41):
        xs = np.array(pt) + off * e
        s = float(xs @ p[3:6])
        m = drag_magnitude(s, float(xs @ xs) - s * s, p)
        if not near:
            assert m == 0.0
        elif off == 0.0:  # the sample itself: drag_near's s and ρ²
            assert s == pytest.approx(s0, abs=1e-9) and float(xs @ xs) - s * s == \
                pytest.approx(r0, abs=1e-7)


@pytest.fixture(scope="module")
def tissue():
    return layered_patient([("skin", 2.0), ("subcutaneous_fat", 6.0), ("muscle", 100.0)],
                           size_mm=(60.0, 60.0, 20.0), spacing_mm=0.4)


def _scenes(tissue):
    nd = Needle.from_entry_and_target((-22.0, 0.0, 0.0), (8.0, -28.0, 0.0), inserted_mm=30.0)
    out = []
    for i in range(8):  # a jiggle: the drag flips sign every 3 frames
        q = 1.0 if (i // 3) % 2 == 0 else -1.0
        moved = dataclasses.replace(nd.advanced(0.3 * (i % 3) * q), tissue_drag_mm=q)
        out.append(Scene(tissue, poses={"ProbeToPatient": probe_on_top()}, needle=moved,
                         time_s=i / 15))
    out.append(dataclasses.replace(out[-1], time_s=0.65))  # the needle still: same field
    out.append(dataclasses.replace(out[0], needle=None, time_s=0.7))
    return out


@pytest.mark.parametrize("subcell", [False, True])
def test_a_still_probe_draws_the_same_frames(tissue, subcell):
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=40, output_px=192,
                      speckle_subcell=subcell)
    kept = USImager(s, seed=3)
    scenes = _scenes(tissue)
    moved = probe_on_top(x_mm=0.4)
    for i, sc in enumerate(scenes + [scenes[2]]):
        pose = moved if i == len(scenes) else None  # the probe moved: drawn afresh
        a = kept.render(sc, pose).pixels.astype(int)
        b = USImager(s, seed=3).render(sc, pose).pixels.astype(int)
        d = np.abs(a - b)
        assert d.max() <= 1 and (d > 0).mean() < 1e-3, i  # float rounding only
        if 2 <= i < len(scenes):
            assert kept._still is not None  # the pose's samples were kept
        if i == 7:
            dragged = kept._dragged[1]
        if i == 8:  # a still needle: its field not drawn again
            assert kept._dragged[1] is dragged
    assert kept._still is None  # dropped when the probe moved
    # the needle moved the speckle: the kept field was drawn again near the shaft
    f0 = kept.render(scenes[0]).pixels.astype(float)
    f1 = kept.render(scenes[3]).pixels.astype(float)
    assert np.abs(f1 - f0).mean() > 0.5
