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


def _drag_offset_mm(tissue, press_mm: float) -> tuple[float, float]:
    """The tissue the needle drags, against the needle as drawn: the pixels that change
    when the drag flips sign (a still needle), weighted by the change, their signed
    distance from the drawn shaft (mm; mean, and the spread about it)."""
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=40, output_px=256)
    nd = Needle.from_entry_and_target((-22.0, 0.0, 0.0), (8.0, -22.0, 0.0), inserted_mm=30.0)
    pose = probe_on_top(press_mm=press_mm)
    fr = [USImager(s, seed=5).render(Scene(tissue, poses={"ProbeToPatient": pose},
                                           needle=dataclasses.replace(nd, tissue_drag_mm=q)))
          for q in (1.0, -1.0)]
    d = np.abs(fr[0].pixels.astype(float) - fr[1].pixels.astype(float))
    (c0, r0), (c1, r1) = fr[0].truth.shaft_px
    u = np.array([c1 - c0, r1 - r0]) / np.hypot(c1 - c0, r1 - r0)
    rows, cols = np.nonzero(d > 20)
    w = d[rows, cols]
    along = (cols - c0) * u[0] + (rows - r0) * u[1]
    keep = (along > 0) & (along < np.hypot(c1 - c0, r1 - r0) - 10)  # along the shaft
    across = ((cols - c0) * u[1] - (rows - r0) * u[0])[keep] * fr[0].spacing_mm[0]
    m = float(np.average(across, weights=w[keep]))
    return m, float(np.sqrt(np.average((across - m) ** 2, weights=w[keep])))


def test_the_dragged_tissue_surrounds_the_needle_as_drawn(tissue):
    """The probe lifted 3 mm off the skin: the contact strain draws the soft tissue up to
    ~3 mm shallower than it lies, the needle (rigid, in the probe's frame) where it is;
    the tissue it drags is the tissue drawn around it, on both sides of the shaft (the
    field was once evaluated at the tissue's undeformed place: off to one side)."""
    for press in (0.5, -3.0):
        m, spread = _drag_offset_mm(tissue, press)
        assert abs(m) < 0.25 * spread and abs(m) < 0.5, (press, m, spread)


def test_steady_advance_keeps_the_field_behind_the_tip(tissue):
    """A needle advanced along its own axis with the same drag: behind both tips the field
    is the same, so ``rescatter`` keeps the frame before's scatterers there (a marker
    field shows where) and they are those drawn afresh; elsewhere it draws them afresh."""
    from needleguide.us import scatterers as S
    from needleguide.us.imager import LATTICE_FRACTION, NO_SCAT
    from needleguide.us.tissue_motion import advanced_along

    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=40, output_px=192)
    img = USImager(s, seed=3)
    nd = Needle.from_entry_and_target((-22.0, 0.0, 0.0), (8.0, -28.0, 0.0), inserted_mm=30.0)
    old, new = (dataclasses.replace(nd.advanced(a), tissue_drag_mm=1.0) for a in (0.0, 0.8))
    sc = Scene(tissue, poses={"ProbeToPatient": probe_on_top()}, needle=old)
    for _ in range(2):
        img.render(sc)
    m, g = img._still, img.setup.geom
    P = [drag_params(x.tip, x.axis, x.inserted_length_mm, 1.0) for x in (old, new)]
    shift = advanced_along(P[0], P[1])
    assert shift == pytest.approx(0.8)
    assert advanced_along(P[0], drag_params(new.tip, new.axis, new.inserted_length_mm, -1.0)) \
        is None  # the drag flipped: drawn afresh
    from needleguide import geometry

    o = geometry.apply(probe_on_top(), np.c_[g.origins, np.zeros(g.n_lines)])
    d = geometry.apply_vector(probe_on_top(), np.c_[g.directions, np.zeros(g.n_lines)])
    e = geometry.apply_vector(probe_on_top(), np.array([0.0, 0.0, 1.0]))

    def run(p, prev=NO_SCAT, sh=0.0, ins=0.0):
        out = np.empty_like(m.scat)
        S.rescatter(o, d, m.rmap, g.r_mm, m.lab, img._ismuscle, e, m.el_off, m.el_w, p,
                    *near_setup(e, p), m.cells, g.dr_mm * LATTICE_FRACTION, 3, False,
                    img._order, m.scat, prev, sh, ins, out)
        return out

    before, fresh = run(P[0]), run(P[1])
    marker = np.full_like(m.scat, 1e6)
    kept = run(P[1], marker, shift, P[0][6])
    where = kept == marker
    assert where.sum() > 2000  # the shaft's band was kept
    assert np.allclose(fresh[where], before[where], rtol=0, atol=1e-5)
    assert np.array_equal(kept[~where], fresh[~where])
    assert ((fresh != m.scat) & ~where).sum() > 500  # the tip's region was drawn again
    assert ((fresh != before) & ~where).sum() > 500  # ... and it moved
