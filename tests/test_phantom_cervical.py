"""Cervical phantom (occiput–T2): anatomy, landmarks, vessels, BMI, determinism, ROI."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.anatomy.phantom import build_model
from needleguide.anatomy.phantom.cervical_soft import fat_thickness_mm, neck_circumference_mm
from needleguide.anatomy.tissues import default_tissue_table

T = default_tissue_table()
BONE = set(T.labels_in_group("bone"))
ORDER = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2"]


@pytest.fixture(scope="session")
def model():
    return build_model("cervical", bmi=24.0, degeneration=0, seed=0)


@pytest.fixture(scope="session")
def patient(model):
    return model.to_patient(1.0)


def point_labels(model, pts) -> np.ndarray:
    """Exact analytic labels at RAS points (N, 3): the strokes evaluated in paint order on
    the points themselves (the painter's semantics without a grid)."""
    from needleguide.anatomy.phantom.sdf import Union

    p = np.atleast_2d(np.asarray(pts, np.float32)).T.copy()
    lab = np.zeros(p.shape[1], np.uint8)
    body = getattr(model, "body", None)  # fast layered skin / fat / muscle pass
    if body is not None:
        one = np.zeros((1, 1, 1), np.uint8)
        for n in range(p.shape[1]):
            aff = np.eye(4)
            aff[:3, 3] = p[:, n]
            lab[n] = body.render_into(one, aff)[0, 0, 0]
    for st in model.strokes:
        parts = st.shape.shapes if isinstance(st.shape, Union) and st.shape.smooth_mm == 0 \
            else [st.shape]
        for shp in parts:
            lo, hi = shp.bbox()
            m = np.all((p >= lo[:, None] - 1e-3) & (p <= hi[:, None] + 1e-3), axis=0)
            if not m.any():
                continue
            idx = np.nonzero(m)[0]
            inside = shp.sdf(p[:, idx]) <= 0
            if st.only_into is not None:
                inside &= np.isin(lab[idx], st.only_into)
            if st.never_into is not None:
                inside &= ~np.isin(lab[idx], st.never_into)
            lab[idx[inside]] = st.label
    return lab


def line_labels(model, a, b, step_mm=0.25) -> np.ndarray:
    """Labels sampled along the segment a -> b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = int(np.ceil(np.linalg.norm(b - a) / step_mm)) + 1
    return point_labels(model, a + np.linspace(0, 1, n)[:, None] * (b - a))


def test_levels_ordered_with_plausible_heights(model):
    v = model.vertebrae
    assert list(v) == ORDER
    z = [v[n].center_mm[2] for n in ORDER]
    assert all(np.diff(z) < 0), z
    for up, lo in zip(ORDER[1:-1], ORDER[2:], strict=True):
        H = v[up].body_height_mm
        assert 11.0 <= H <= 19.0
        gap = np.linalg.norm(v[up].center_mm - v[lo].center_mm) - \
            (v[up].body_height_mm + v[lo].body_height_mm) / 2
        assert 3.0 <= gap <= 7.5, (up, lo, gap)  # disc heights ~4.5-5.5 mm
    for n in ("C3", "C4", "C5", "C6"):
        assert 14.0 <= v[n].body_width_mm <= 20.0 and 14.0 <= v[n].body_depth_mm <= 18.0
    # lordosis: C2 and C7 end-plate normals differ by a plausible Cobb angle
    cobb = np.degrees(np.arccos(np.clip(v["C2"].superior @ v["C7"].superior, -1, 1)))
    assert 5.0 <= cobb <= 45.0
    for n in ORDER[1:]:
        assert {"pedicle.right", "pillar.left", "spinous_tip"} <= set(v[n].extra)


def test_every_landmark_in_its_tissue_at_1mm(model, patient):
    required = ["C6.anterior_tubercle.right", "C6.anterior_tubercle.left",
                "C2-C3.facet.right", "C2-C3.facet.left", "third_occipital_nerve.right",
                "third_occipital_nerve.left", "C5-C6.foramen.right", "C5-C6.foramen.left",
                "C6.stellate.right", "C6.stellate.left", "C7.medial_branch.right"]
    required += [f"C{i}.medial_branch.{s}" for i in range(3, 8) for s in ("right", "left")]
    assert set(required) <= set(model.landmarks)
    bad = {n: (lm.tissue, patient.tissue_name_at(lm.position_mm))
           for n, lm in model.landmarks.items()
           if patient.tissue_name_at(lm.position_mm) != lm.tissue}
    assert not bad


@pytest.mark.parametrize("bmi,deg,seed", [(18.0, 3, 1), (40.0, 2, 7), (30.0, 1, 123)])
def test_landmarks_in_tissue_exactly_for_other_patients(bmi, deg, seed):
    m = build_model("cervical", bmi=bmi, degeneration=deg, seed=seed)
    names = list(m.landmarks)
    got = point_labels(m, np.array([m.landmarks[n].position_mm for n in names]))
    bad = {n: (m.landmarks[n].tissue, T[int(g)].name) for n, g in zip(names, got, strict=True)
           if T[int(g)].name != m.landmarks[n].tissue}
    assert not bad


def test_c6_tubercle_lateral_to_body_and_carotid_anterior(model):
    c6 = model.vertebrae["C6"]
    for side, s in (("right", 1), ("left", -1)):
        tub = model.landmarks[f"C6.anterior_tubercle.{side}"].position_mm
        rel = tub - c6.center_mm
        u = rel @ c6.right
        assert s * u > c6.body_width_mm / 2 + 4.0  # lateral to the body
        car = model.centerlines[f"carotid.{side}"]
        i = np.argmin(np.abs(car.points_mm[:, 2] - tub[2]))
        pc = car.points_mm[i]
        assert (pc - tub) @ c6.anterior > 6.0  # carotid in front of the tubercle
        assert s * ((pc - c6.center_mm) @ c6.right) > c6.body_width_mm / 2  # anterolateral
        ij = model.centerlines[f"internal_jugular.{side}"].points_mm
        pj = ij[np.argmin(np.abs(ij[:, 2] - tub[2]))]
        assert s * (pj[0] - pc[0]) > 3.0  # IJV lateral to the carotid


def _enclosed_by_bone(model, centre, right, anterior, reach_mm=6.0) -> int:
    """Number of the 8 in-plane rays from ``centre`` that meet bone within ``reach_mm``."""
    ang = np.radians(np.arange(0, 360, 45))
    d = np.cos(ang)[:, None] * right + np.sin(ang)[:, None] * anterior
    t = np.arange(0.0, reach_mm + 1e-6, 0.25)
    pts = centre + d[:, None, :] * t[None, :, None]
    lab = point_labels(model, pts.reshape(-1, 3)).reshape(len(ang), len(t))
    return int(np.isin(lab, list(BONE)).any(axis=1).sum())


def test_vertebral_artery_through_c6_to_c1_foramina_not_c7(model):
    v = model.vertebrae
    for side in ("right", "left"):
        va = model.centerlines[f"vertebral_artery.{side}"]
        assert va.kind == "artery" and va.velocity_mm_s > 0
        P = va.points_mm
        for n in ("C6", "C5", "C4", "C3", "C2", "C1"):
            f = np.array(v[n].extra[f"transverse_foramen.{side}"])
            i = np.argmin(np.linalg.norm(P - f, axis=1))
            assert np.linalg.norm(P[i] - f) < 1.0, n
            assert T[int(point_labels(model, P[i])[0])].name == "vertebral_artery"
            assert _enclosed_by_bone(model, P[i], v[n].right, v[n].anterior) == 8, n
        c7 = v["C7"]
        i = np.argmin(np.abs((P - c7.center_mm) @ c7.superior))
        assert _enclosed_by_bone(model, P[i], c7.right, c7.anterior) < 6
        # the VA's C7 point is anterior to the C7 transverse process
        assert (P[i] - c7.center_mm) @ c7.anterior > c7.body_depth_mm / 2


def test_trachea_contains_air_and_oesophagus_behind_left(model):
    c7 = model.vertebrae["C7"]
    front = c7.center_mm + c7.anterior * (c7.body_depth_mm / 2)
    lab = line_labels(model, front, front + 50.0 * c7.anterior)
    names = [T[int(x)].name for x in lab]
    i_air = names.index("internal_air")
    i_oes = names.index("oesophagus")
    assert i_oes < i_air  # oesophagus behind the airway
    assert "trachea_wall" in names[i_oes:i_air]
    assert names[i_air:].count("internal_air") * 0.25 > 12.0  # lumen ~16-18 mm
    left = line_labels(model, front + 8.5 * c7.anterior - 15 * c7.right,
                       front + 8.5 * c7.anterior + 15 * c7.right)
    oes = np.nonzero(left == T.label("oesophagus"))[0]
    assert oes.size and oes.mean() * 0.25 - 15.0 < -1.0  # left of midline (RAS x < 0)


def _fat_along(m, z_level: str, direction) -> float:
    lv = m.vertebrae[z_level]
    a = lv.center_mm
    lab = line_labels(m, a, a + 140.0 * np.asarray(direction, float), 0.25)
    return float((lab == T.label("subcutaneous_fat")).sum() * 0.25)


def test_fat_thickness_grows_with_bmi():
    th = {}
    for bmi in (20.0, 25.0, 35.0, 50.0):
        m = build_model("cervical", bmi=bmi, seed=3)
        th[bmi] = (_fat_along(m, "C6", (1, 0, 0)), _fat_along(m, "C6", (0, -1, 0)))
    lat = [th[b][0] for b in sorted(th)]
    post = [th[b][1] for b in sorted(th)]
    assert all(np.diff(lat) > 0) and all(np.diff(post) > 0)
    assert 2.0 <= th[25.0][0] <= 12.0 and post[1] > lat[1]  # nuchal fat thicker
    assert th[50.0][1] > 20.0
    assert fat_thickness_mm(35) > fat_thickness_mm(25)
    assert neck_circumference_mm(30) == pytest.approx(395.0)


def test_same_seed_identical_labels_other_seed_differs():
    a = build_model("cervical", seed=11, spacing_mm=2.0).to_patient()
    b = build_model("cervical", seed=11, spacing_mm=2.0).to_patient()
    c = build_model("cervical", seed=12, spacing_mm=2.0).to_patient()
    assert np.array_equal(a.labels, b.labels)
    assert a.labels.shape != c.labels.shape or not np.array_equal(a.labels, c.labels)


def test_skin_inside_bounds_and_all_structures_present(patient):
    lab = patient.labels
    for face in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        assert not np.isin(face, [T.label("skin"), T.label("subcutaneous_fat")]).any()
    present = set(np.unique(lab).tolist())
    for name in ("occiput", "vertebral_body", "pedicle", "lamina", "spinous_process",
                 "transverse_process", "superior_articular_process",
                 "inferior_articular_process", "facet_joint_space", "facet_capsule", "disc",
                 "foramen", "ligamentum_flavum", "epidural_fat", "dura", "csf", "spinal_cord",
                 "nerve_root", "drg", "vertebral_artery", "carotid", "internal_jugular",
                 "anterior_tubercle", "longus_colli", "thyroid", "oesophagus", "trachea_wall",
                 "internal_air", "third_occipital_nerve", "medial_branch", "rib", "neck_muscle",
                 "skin", "subcutaneous_fat"):
        assert T.label(name) in present, name


def test_roi_quarter_mm_matches_whole_volume_on_bone(model, patient):
    c5 = model.vertebrae["C5"].center_mm
    # a 1 mm voxel centre, shifted by half a voxel so that 4x4x4 blocks of the ROI
    # are centred on the 1 mm voxel centres
    ijk = np.rint(patient.voxel_of(c5 + np.array([0.0, -12.0, 0.0])))
    centre = (patient.VoxelToPatient[:3, :3] @ ijk + patient.VoxelToPatient[:3, 3]) + 0.5
    roi = patient.roi(centre, 40.0, 0.25)
    assert roi.labels.shape == (160, 160, 160)
    fine = np.isin(roi.labels, list(BONE)).reshape(40, 4, 40, 4, 40, 4).mean(axis=(1, 3, 5)) > 0.5
    lo = np.rint(patient.voxel_of(roi.VoxelToPatient[:3, 3] + 0.375)).astype(int)
    coarse = np.isin(patient.labels[lo[0]:lo[0] + 40, lo[1]:lo[1] + 40, lo[2]:lo[2] + 40],
                     list(BONE))
    dice = 2 * (fine & coarse).sum() / (fine.sum() + coarse.sum())
    assert fine.sum() > 3000 and dice > 0.9


def test_centerlines_named_typed_and_roots_exit_above_their_vertebra(model):
    cl = model.centerlines
    for side in ("right", "left"):
        assert cl[f"vertebral_artery.{side}"].kind == "artery"
        assert cl[f"carotid.{side}"].kind == "artery"
        ij = cl[f"internal_jugular.{side}"]
        assert ij.kind == "vein" and ij.velocity_mm_s > 0
        assert ij.points_mm[0, 2] > ij.points_mm[-1, 2]  # distal (skull) -> central
        assert cl[f"external_carotid.{side}"].parent == f"carotid.{side}"
        assert 1.5 < cl[f"vertebral_artery.{side}"].radii_mm.mean() < 2.5
        assert 3.0 < cl[f"carotid.{side}"].radii_mm.max() < 4.5
        v = model.vertebrae
        for root, (up, lo) in {"C3": ("C2", "C3"), "C6": ("C5", "C6"),
                               "C8": ("C7", "T1")}.items():
            P = cl[f"nerve_root.{root}.{side}"].points_mm
            mid = P[1]  # in the foramen
            assert (mid - v[lo].center_mm) @ v[lo].superior > 0  # above vertebra lo
            assert (mid - v[up].center_mm) @ v[up].superior < 0  # below vertebra up
            assert T[int(point_labels(model, mid)[0])].name in ("nerve_root", "drg")


def test_degeneration_narrows_discs_joints_and_foramina():
    m0 = build_model("cervical", degeneration=0, seed=4)
    m3 = build_model("cervical", degeneration=3, seed=4)

    def disc_gap(m, up, lo):
        v = m.vertebrae
        return np.linalg.norm(v[up].center_mm - v[lo].center_mm) - \
            (v[up].body_height_mm + v[lo].body_height_mm) / 2

    for up, lo in (("C4", "C5"), ("C5", "C6")):
        assert disc_gap(m3, up, lo) < 0.7 * disc_gap(m0, up, lo)

    def count(m, name, centre, half=9.0):
        t = np.arange(-half, half + 1e-6, 0.5)
        g = np.stack(np.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3) + centre
        return int((point_labels(m, g) == T.label(name)).sum())

    for m in (m0, m3):
        assert count(m, "foramen", m.landmarks["C5-C6.foramen.right"].position_mm) > 0
    assert count(m3, "foramen", m3.landmarks["C5-C6.foramen.right"].position_mm) < \
        count(m0, "foramen", m0.landmarks["C5-C6.foramen.right"].position_mm)
    c0 = m0.landmarks["C4-C5.facet.right"].position_mm
    c3 = m3.landmarks["C4-C5.facet.right"].position_mm
    assert count(m3, "facet_joint_space", c3, 6.0) < count(m0, "facet_joint_space", c0, 6.0)
