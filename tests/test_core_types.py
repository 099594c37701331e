import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide import geometry
from needleguide.anatomy import Patient, default_tissue_table
from needleguide.errors import UserError
from needleguide.frame import Dose, Frame, FrameTruth
from needleguide.scene import Needle, Scene

angles = st.floats(-np.pi, np.pi, allow_nan=False)
coords = st.floats(-500, 500, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(angles, angles, angles, coords, coords, coords)
def test_transform_inverse_roundtrip(a, b, c, x, y, z):
    r = geometry.rot_x(a) @ geometry.rot_y(b) @ geometry.rot_z(c)
    t = geometry.make_transform(r, (x, y, z))
    assert geometry.is_rigid(t)
    p = np.array([[1.0, 2.0, 3.0], [-40.0, 5.0, 70.0]])
    back = geometry.apply(geometry.invert(t), geometry.apply(t, p))
    np.testing.assert_allclose(back, p, atol=1e-7)


def test_lps_ras_is_involution():
    f = geometry.lps_to_ras()
    np.testing.assert_allclose(f @ f, np.eye(4))
    np.testing.assert_allclose(geometry.apply(f, [10, 20, 30]), [-10, -20, 30])


def test_tissue_table_unique_and_impedance():
    tt = default_tissue_table()
    assert tt["muscle" if "muscle" in tt else "paraspinal_muscle"].impedance_mrayl == pytest.approx(
        1.659, abs=0.05)
    assert tt["csf"].impedance_mrayl == pytest.approx(1.50, abs=0.02)
    assert len({t.name for t in tt}) == len(tt)
    assert tt.lut("speed_m_s")[tt.label("csf")] == 1500


def test_needle_validation_and_advance():
    n = Needle.from_entry_and_target((0, -80, 0), (0, 0, 0), gauge=22, length_mm=89,
                                     inserted_mm=40)
    np.testing.assert_allclose(n.tip, [0, -40, 0])
    n2 = n.advanced(10)
    np.testing.assert_allclose(n2.tip, [0, -30, 0])
    assert n2.inserted_length_mm == 50
    np.testing.assert_allclose(geometry.apply(n.NeedleTipToPatient, [0, 0, 0]), n.tip)
    np.testing.assert_allclose(geometry.apply_vector(n.NeedleTipToPatient, [0, 0, 1]), n.axis)
    with pytest.raises(UserError, match="gauge"):
        Needle(gauge=30)
    with pytest.raises(UserError, match="length_mm"):
        Needle(length_mm=500)


def test_patient_label_at_and_roi():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[5:15, 5:15, 5:15] = 6
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = [-20, -20, -20]
    p = Patient(labels=labels, VoxelToPatient=aff)
    assert p.label_at(np.array([[0.0, 0.0, 0.0]]))[0] == 6
    assert p.label_at(np.array([[1000.0, 0, 0]]))[0] == 0
    roi = p.roi((0, 0, 0), 10, 0.5)
    assert roi.shape == (20, 20, 20)
    assert (roi.labels == 6).all()
    np.testing.assert_allclose(roi.spacing_mm, [0.5, 0.5, 0.5])


def test_scene_is_immutable_snapshot():
    labels = np.zeros((4, 4, 4), np.uint8)
    s = Scene(patient=Patient(labels=labels, VoxelToPatient=np.eye(4)))
    s2 = s.with_needle(Needle()).with_time(1.5).with_pose("ProbeToPatient", np.eye(4))
    assert s.needle is None and s2.needle is not None and s2.time_s == 1.5
    assert "ProbeToPatient" in s2.poses and not s.poses
    with pytest.raises(AttributeError):
        s.time_s = 3  # type: ignore[misc]


def test_frame_without_truth_and_pixel_mapping():
    f = Frame(pixels=np.zeros((10, 20), np.float32), spacing_mm=(0.5, 0.25),
              ImageToPatient=geometry.make_transform(None, (100, 0, 0)), time_s=0.0,
              modality="us", dose=Dose(), truth=FrameTruth(tip_px=(3, 4)))
    assert f.without_truth().truth is None
    np.testing.assert_allclose(f.pixel_to_patient(4, 2), [101.0, 1.0, 0.0])
    assert '"modality": "us"' in f.to_json()
    d = Dose(1, 2, 3) + Dose(1, 1, 1)
    assert (d.air_kerma_mgy, d.dap_gy_cm2, d.fluoro_time_s) == (2, 3, 4)


def test_atomic_write_gives_a_readable_file_and_leaves_nothing_on_error(tmp_path):
    import os
    import stat

    from needleguide.atomic import atomic_path, write_json

    p = write_json(tmp_path / "a.json", {"x": 1})
    assert p.read_text().strip().startswith("{")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.png") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.json"]


def test_walk_to_skin_finds_the_first_outside_point():
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[10:30, 10:30, 10:30] = 3
    p = Patient(labels=labels, VoxelToPatient=np.eye(4))
    entry, steps, labs = p.walk_to_skin((20, 20, 20), (0, 2.0, 0))
    assert entry[0] == 20 and entry[2] == 20 and 29.5 <= entry[1] <= 30.0
    assert p.label_at(entry[None])[0] == 0
    assert (labs == 3).all() and steps[-1] == pytest.approx(entry[1] - 20 - 0.5)
    none, _, _ = p.walk_to_skin((20, 20, 20), (0, 1, 0), max_mm=5)
    assert none is None
