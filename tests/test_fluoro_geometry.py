"""C-arm geometry: pinhole consistency (hypothesis), named views, display orientation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide import geometry
from needleguide.anatomy.patient import Patient, Vertebra
from needleguide.errors import UserError
from needleguide.fluoro import CArm, CArmGeometry, named_view
from needleguide.fluoro.carm import angles_from_beam

GEOM = CArmGeometry(pixels=128)


@settings(max_examples=60, deadline=None)
@given(orbit=st.floats(-110, 110), tilt=st.floats(-45, 45),
       iso=st.tuples(*[st.floats(-50, 50)] * 3),
       pt=st.tuples(*[st.floats(-80, 80)] * 3))
def test_projection_agrees_with_the_ray_through_the_pixel(orbit, tilt, iso, pt):
    carm = CArm(geometry=GEOM, isocenter_mm=iso, orbit_deg=orbit, tilt_deg=tilt)
    assert geometry.is_rigid(carm.ImageToPatient)
    u, v, b = carm.axes
    assert np.allclose(np.cross(u, v), b)
    p = np.asarray(iso) + np.asarray(pt)
    col, row = carm.project(p)
    # the detector point of that pixel, the point and the source are collinear
    det = geometry.apply(carm.ImageToPatient, [col * GEOM.pixel_mm, row * GEOM.pixel_mm, 0])
    s = carm.source_mm
    d1 = (p - s) / np.linalg.norm(p - s)
    d2 = (det - s) / np.linalg.norm(det - s)
    assert np.allclose(d1, d2, atol=1e-9)
    # the detector point lies SID from the source along the beam
    assert (det - s) @ b == pytest.approx(GEOM.sid_mm)
    # angles round-trip
    o, t = angles_from_beam(b)
    assert o == pytest.approx(orbit, abs=1e-6) and t == pytest.approx(tilt, abs=1e-6)


def _patient_with_lordosis() -> Patient:
    vs = {}
    for i, (name, ang) in enumerate([("L3", 5.0), ("L4", 12.0), ("L5", 20.0), ("S1", 38.0)]):
        a = np.radians(ang)
        sup = np.array([0.0, np.sin(a), np.cos(a)])
        ant = np.array([0.0, np.cos(a), -np.sin(a)])
        vs[name] = Vertebra(name, np.array([0.0, 10.0 * i, -35.0 * i]), sup, ant, 28, 45, 35)
    return Patient(labels=np.zeros((4, 4, 4), np.uint8), VoxelToPatient=np.eye(4),
                   vertebrae=vs)


def test_named_views():
    p = _patient_with_lordosis()
    ap = named_view(p, "ap", "L4-L5")
    sup = p.vertebrae["L4"].superior + p.vertebrae["L5"].superior
    sup /= np.linalg.norm(sup)
    assert abs(ap.beam @ sup) < 1e-9  # end-plates squared: beam in the disc plane
    assert ap.tilt_deg > 0  # lordosis: cranial tilt
    obl = named_view(p, "oblique-right", "L4-L5")
    assert np.degrees(np.arccos(obl.beam @ ap.beam)) == pytest.approx(30.0, abs=1e-6)
    assert obl.beam[0] > 0  # detector toward the patient's right
    assert named_view(p, "oblique-left", "L4-L5").beam[0] < 0
    clo = named_view(p, "contralateral-oblique", "L4-L5", side="right")
    assert clo.beam[0] < 0 and np.degrees(np.arccos(clo.beam @ ap.beam)) == pytest.approx(50)
    lat = named_view(p, "lateral", "L4-L5")
    assert lat.orbit_deg == pytest.approx(90.0)
    fer = named_view(p, "ferguson", "L3")
    assert abs(fer.beam @ (p.vertebrae["L5"].superior + p.vertebrae["S1"].superior)) < 1e-9
    assert fer.tilt_deg > ap.tilt_deg  # caudal–cranial tilt for L5–S1
    with pytest.raises(UserError, match="level"):
        named_view(p, "ap", "L9")
    with pytest.raises(UserError, match="view"):
        named_view(p, "sideways", "L4")


def test_display_orientation_ap_and_lateral():
    ap = CArm(geometry=GEOM)
    c0 = (GEOM.pixels - 1) / 2
    assert ap.project([50.0, 0, 0])[0] < c0  # patient's right on the image left
    assert ap.project([0, 0, 50.0])[1] < c0  # superior up
    lat = CArm(geometry=GEOM, orbit_deg=90.0)
    assert lat.project([0, 50.0, 0])[0] < c0  # anterior on the image left


def test_bad_angles_are_user_errors():
    with pytest.raises(UserError, match="orbit_deg"):
        CArm(orbit_deg=200)
    with pytest.raises(UserError, match="tilt_deg"):
        CArm(tilt_deg=-80)
