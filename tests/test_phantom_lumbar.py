"""The lumbar phantom: geometry, landmarks, BMI, degeneration, determinism, I/O."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from needleguide.anatomy.nifti import load_volume, save_labels
from needleguide.anatomy.phantom import build_model

LEVELS = ["T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]


@pytest.fixture(scope="session")
def lumbar_model():
    return build_model("lumbar", bmi=28.0, degeneration=0, seed=0, spacing_mm=1.0)


@pytest.fixture(scope="session")
def lumbar_patient(lumbar_model):
    return lumbar_model.to_patient()


def _line_labels(model, start, direction, length_mm, step_mm=0.25):
    """Labels along a ray (rendered from the model), and the distances of the samples."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    n = int(length_mm / step_mm) + 1
    aff = np.eye(4)
    aff[:3, 1] = d * step_mm
    # two helper axes so the affine is invertible
    e = np.cross(d, [1.0, 0, 0]) if abs(d[0]) < 0.9 else np.cross(d, [0, 1.0, 0])
    e /= np.linalg.norm(e)
    aff[:3, 0] = e * step_mm
    aff[:3, 2] = np.cross(e, d) * step_mm
    aff[:3, 3] = start
    lab = model.render((1, n, 1), aff)[0, :, 0]
    return lab, np.arange(n) * step_mm


def _depth_to_skin(model, point, tissue_names):
    """Distance (mm) from the skin surface straight posterior to the dorsal surface of the
    structure (any of ``tissue_names``) at ``point``."""
    ids = [model.tissues.label(t) for t in tissue_names]
    lab, dist = _line_labels(model, point, [0, -1.0, 0], 250.0)
    inside = np.isin(lab, ids)
    last = np.nonzero(inside)[0]
    # the dorsal surface: end of the first run of the structure along the ray
    k = last[0]
    while k + 1 < len(lab) and inside[k + 1]:
        k += 1
    air = np.nonzero(lab == 0)[0]
    air = air[air > k]
    return float(dist[air[0]] - dist[k])


def test_levels_ordered_with_plausible_heights(lumbar_model):
    V = lumbar_model.vertebrae
    assert list(V) == LEVELS
    z = [V[n].center_mm[2] for n in LEVELS]
    assert all(a > b for a, b in zip(z, z[1:], strict=False))
    for n in LEVELS[:-1]:
        assert 20.0 <= V[n].body_height_mm <= 32.0
        assert 33.0 <= V[n].body_width_mm <= 55.0
        up = V[n].superior
        assert abs(np.linalg.norm(up) - 1) < 1e-9 and up[2] > 0.85
        for key in ("pedicle_right", "pedicle_left", "spinous_tip", "lamina_center"):
            assert len(V[n].extra[key]) == 3
        # right pedicle is to the patient's right, spinous tip posterior
        assert V[n].extra["pedicle_right"][0] > V[n].extra["pedicle_left"][0]
        assert V[n].extra["spinous_tip"][1] < V[n].center_mm[1] - 40
    # centre-to-centre spacing = body + disc: 28–45 mm
    gaps = np.diff(z[:-1])
    assert np.all((-gaps > 28.0) & (-gaps < 45.0))
    # lordosis L1–S1 close to the 50° target
    lord = lumbar_model.meta["lordosis_L1_S1_deg"]
    assert 35.0 <= lord <= 65.0


def test_required_landmarks_present_and_inside_their_tissue(lumbar_model, lumbar_patient):
    L = lumbar_model.landmarks
    for name in ("L4-L5.foramen.right", "L5.medial_branch.right", "L4-L5.facet.right",
                 "L4-L5.interlaminar", "sij.right.inferior", "sacral_hiatus",
                 "hip.right.femoral_neck", "S1.foramen.right", "L4.spinous_tip",
                 "L5-S1.foramen.left", "L3.medial_branch.left", "L2-L3.facet.left"):
        assert name in L, name
    wrong = {k: (v.tissue, lumbar_patient.tissue_name_at(v.position_mm))
             for k, v in L.items() if lumbar_patient.tissue_name_at(v.position_mm) != v.tissue}
    assert not wrong
    assert len(L) > 100


def test_foramina_open_to_the_outside_through_non_bone(lumbar_model, lumbar_patient):
    p = lumbar_patient
    bone = np.isin(p.labels, p.tissues.labels_in_group("bone"))
    comp, _ = ndimage.label(~bone)
    outside = comp[0, 0, 0]
    assert p.labels[0, 0, 0] == 0
    names = [k for k in lumbar_model.landmarks if ".foramen." in k]
    assert len(names) >= 20
    for k in names:
        ijk = np.rint(p.voxel_of(lumbar_model.landmarks[k].position_mm)).astype(int)
        assert comp[tuple(ijk)] == outside, k


def test_skin_to_lamina_depth_grows_with_bmi_within_published_ranges():
    depth_lam, depth_mb = {}, {}
    for bmi in (20.0, 28.0, 35.0, 45.0):
        m = build_model("lumbar", bmi=bmi, seed=0)
        depth_lam[bmi] = _depth_to_skin(m, m.landmarks["L4.lamina.right"].position_mm,
                                        ["lamina"])
        depth_mb[bmi] = _depth_to_skin(m, m.landmarks["L4.medial_branch.right"].position_mm,
                                       ["medial_branch"])
    vals = [depth_lam[b] for b in sorted(depth_lam)]
    assert all(a < b for a, b in zip(vals, vals[1:], strict=False)), depth_lam
    # normal habitus: lumbar epidural space mostly 40–60 mm deep (Sutton & Linter 1991);
    # the lamina lies a few mm shallower
    assert 30.0 <= depth_lam[20.0] <= 60.0, depth_lam
    # BMI > 30: 76 ± 15 mm to the medial-branch target (Rauch et al. RAPM 2009)
    assert 61.0 <= depth_mb[35.0] <= 91.0, depth_mb
    assert depth_mb[45.0] > depth_mb[35.0]


def test_skin_to_sacral_hiatus_depth_vs_bmi_within_published_bounds():
    """The hiatus lies under skin and a thin fat layer (no muscle over the midline lower
    sacrum); the fat there grows far less with BMI than over the lumbar paraspinals.
    Bounds: skin to sacral cornua 5.2 ± 3.4 mm on ultrasound (76 adults; the ligament lies
    a few mm deeper), deeper in obese patients (Park et al., Clin Pain 2008;7:7) but the
    sacrum stays well under 80 mm deep even above 100 kg (Chen et al., Anesthesiology
    2005;102:693); 5–25 mm in normal habitus, under ~40–60 mm in obesity."""
    muscles = {"muscle", "paraspinal_muscle", "gluteal_muscle"}
    lig, hia, lam = {}, {}, {}
    for bmi in (22.0, 38.0, 50.0):
        m = build_model("lumbar", bmi=bmi, seed=0)
        T = m.tissues
        h = m.landmarks["sacral_hiatus"].position_mm
        lab, dist = _line_labels(m, h, [0, -1.0, 0], 150.0)
        air = int(np.nonzero(lab == 0)[0][0])
        names = {T[int(v)].name for v in lab[:air]}
        assert not names & muscles, (bmi, names)
        assert "sacrococcygeal_ligament" in names and "subcutaneous_fat" in names
        k = np.nonzero(lab[:air] == T.label("sacrococcygeal_ligament"))[0][-1]
        lig[bmi] = float(dist[air] - dist[k])
        hia[bmi] = float(dist[air])
        lam[bmi] = _depth_to_skin(m, m.landmarks["L4.lamina.right"].position_mm, ["lamina"])
    assert 3.0 <= lig[22.0] <= 25.0, lig
    assert lig[22.0] < lig[38.0] < lig[50.0] <= 60.0, lig
    assert hia[22.0] <= 30.0 and hia[38.0] <= 60.0 and hia[50.0] <= 75.0, hia
    # over the sacrum the fat grows markedly more slowly with BMI than over L4
    assert lig[38.0] - lig[22.0] < 0.7 * (lam[38.0] - lam[22.0]), (lig, lam)


def _interlaminar_window_mm(model, upper, lower, x_mm):
    """Longest cranio-caudal run (mm) of posterior-to-anterior rays, in the parasagittal
    plane at ``x_mm``, that meet the ligamentum flavum / canal before any bone."""
    T = model.tissues
    U, B = model.vertebrae[upper], model.vertebrae[lower]
    sup = U.superior + B.superior
    sup /= np.linalg.norm(sup)
    ant = U.anterior + B.anterior
    ant -= sup * (ant @ sup)
    ant /= np.linalg.norm(ant)
    c = 0.5 * (U.center_mm + B.center_mm)
    c[0] = x_mm
    step = 0.5
    aff = np.eye(4)
    aff[:3, 0] = sup * step
    aff[:3, 1] = ant * step
    aff[:3, 2] = np.cross(sup, ant) * step
    aff[:3, 3] = c - sup * 25.0 - ant * 90.0
    lab = model.render((101, 181, 1), aff)[:, :, 0]
    bone = set(T.labels_in_group("bone"))
    canal = {T.label(n) for n in ("ligamentum_flavum", "epidural_fat", "dura", "csf")}
    open_ = []
    for row in lab:
        hit = [v for v in row if v in bone or v in canal]
        open_.append(bool(hit) and hit[0] in canal)
    best = run = 0
    for o in open_:
        run = run + 1 if o else 0
        best = max(best, run)
    return best * step


def test_interlaminar_windows_open_in_the_paramedian_plane(lumbar_model):
    """Paramedian sagittal (~6–9 mm from the midline): at L3–L4, L4–L5 and L5–S1 a window
    between the shingled laminae shows the ligamentum flavum and the canal (clinically
    ~10–20 mm at L3–L5 in young adults, narrowing with degeneration)."""
    for u, b in (("L3", "L4"), ("L4", "L5"), ("L5", "S1")):
        for x in (6.0, 9.0):
            w = _interlaminar_window_mm(lumbar_model, u, b, x)
            assert 7.0 <= w <= 25.0, (u, b, x, w)


def test_degeneration_reduces_disc_height():
    h = {}
    for grade in (0, 3):
        m = build_model("lumbar", bmi=24.0, degeneration=grade, seed=3)
        c = m.landmarks["L4-L5.disc"].position_mm
        up = 0.5 * (m.vertebrae["L4"].superior + m.vertebrae["L5"].superior)
        lab, dist = _line_labels(m, c - up * 25.0, up, 50.0)
        h[grade] = float((lab == m.tissues.label("disc")).sum() * 0.25)
        assert m.meta["disc_heights_mm"]["L4-L5"] > 0
    assert h[3] < 0.8 * h[0], h
    assert 8.0 <= h[0] <= 15.0, h


def test_same_seed_same_labels_different_seed_differs():
    a = build_model("lumbar", seed=5, spacing_mm=3.0).to_patient()
    b = build_model("lumbar", seed=5, spacing_mm=3.0).to_patient()
    c = build_model("lumbar", seed=6, spacing_mm=3.0).to_patient()
    assert a.shape == b.shape and np.array_equal(a.labels, b.labels)
    assert a.labels.shape != c.labels.shape or not np.array_equal(a.labels, c.labels)


def test_nifti_round_trip(tmp_path, lumbar_patient):
    p = lumbar_patient
    path = save_labels(p.labels, p.VoxelToPatient, tmp_path / "labels.nii.gz")
    data, aff = load_volume(path)
    assert data.dtype == np.uint8 and np.array_equal(data, p.labels)
    assert np.allclose(aff, p.VoxelToPatient)


def test_every_named_structure_is_present(lumbar_patient):
    present = set(np.unique(lumbar_patient.labels).tolist())
    T = lumbar_patient.tissues
    for name in ("vertebral_body", "pedicle", "lamina", "spinous_process",
                 "transverse_process", "superior_articular_process",
                 "inferior_articular_process", "facet_joint_space", "facet_capsule", "disc",
                 "foramen", "sacrum", "sacral_foramen", "sacral_hiatus",
                 "sacrococcygeal_ligament", "coccyx", "ilium", "sij_space", "femoral_head",
                 "femoral_neck", "acetabulum", "hip_capsule", "hip_cartilage",
                 "ligamentum_flavum", "epidural_fat", "dura", "csf", "spinal_cord",
                 "nerve_root", "drg", "segmental_artery", "epidural_venous_plexus", "aorta",
                 "ivc", "medial_branch", "skin", "subcutaneous_fat", "paraspinal_muscle",
                 "psoas", "gluteal_muscle", "interspinous_ligament", "rib", "kidney"):
        assert T.label(name) in present, name


def test_centerlines_names_kinds_and_course(lumbar_model):
    C = lumbar_model.centerlines
    L = lumbar_model.landmarks
    assert C["aorta"].kind == "artery" and C["aorta"].velocity_mm_s > 0
    assert C["ivc"].kind == "vein"
    for side in ("right", "left"):
        seg = C[f"L4.segmental_artery.{side}"]
        assert seg.kind == "artery" and seg.parent == "aorta"
        rad = C[f"L4.radicular_artery.{side}"]
        assert rad.parent == seg.name
        f = L[f"L4-L5.foramen.{side}"].position_mm
        assert np.min(np.linalg.norm(rad.points_mm - f, axis=1)) < 12.0
        root = C[f"L4.nerve_root.{side}"]
        assert root.kind == "nerve"
        # the L4 root passes below the L4 pedicle through the L4-L5 foramen
        assert np.min(np.linalg.norm(root.points_mm - f, axis=1)) < 10.0
        ped = L[f"L4.pedicle.{side}"].position_mm
        drg = L[f"L4.drg.{side}"].position_mm
        assert drg[2] < ped[2]
        assert f"L4.medial_branch.{side}" in C
    assert "epidural_venous_plexus.right" in C


def test_roi_is_rerendered_finely(lumbar_model, lumbar_patient):
    c = lumbar_model.landmarks["L4-L5.facet.right"].position_mm
    roi = lumbar_patient.roi(c, 30.0, 0.5)
    assert roi.shape == (60, 60, 60)
    assert np.allclose(roi.spacing_mm, 0.5)
    from needleguide.anatomy.patient import resample_labels

    nn = resample_labels(lumbar_patient.labels, lumbar_patient.VoxelToPatient, roi.shape,
                         roi.VoxelToPatient)
    agree = float((nn == roi.labels).mean())
    assert 0.75 < agree < 1.0  # same anatomy, finer surfaces
    assert roi.tissue_name_at(c) == "facet_joint_space"


def test_landmarks_inside_their_tissue_for_degenerate_obese_variant():
    m = build_model("lumbar", bmi=40.0, degeneration=3, seed=3)
    p = m.to_patient()
    wrong = {k: (v.tissue, p.tissue_name_at(v.position_mm))
             for k, v in m.landmarks.items() if p.tissue_name_at(v.position_mm) != v.tissue}
    assert not wrong


def test_body_layer_pass_is_exact_and_ordered(lumbar_model):
    """The fast row-marching body pass equals a per-voxel evaluation, and the layers nest:
    skin outside fat outside the trunk."""
    body = lumbar_model.body
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    aff[:3, 3] = [-40.0, -160.0, -30.0]
    shape = (60, 330, 12)
    fast = body.render_into(np.zeros(shape, np.uint8), aff)
    slow_aff = aff.copy()
    slow_aff[2, 1] = 1e-12  # not axis-aligned: per-voxel path
    slow = body.render_into(np.zeros(shape, np.uint8), slow_aff)
    assert np.array_equal(fast, slow)
    T = lumbar_model.tissues
    col = fast[30, :, 6]  # a line from behind the back forwards at x = -10 mm
    seq = [int(v) for i, v in enumerate(col) if i == 0 or v != col[i - 1]]
    assert seq[:3] == [0, T.label("skin"), T.label("subcutaneous_fat")]
    assert seq[3] in (T.label("paraspinal_muscle"), T.label("muscle"))
    assert T.label("paraspinal_muscle") in seq
    assert seq[-3:] == [T.label("subcutaneous_fat"), T.label("skin"), 0]


def test_epidural_space_is_one_compartment_from_foramina_to_hiatus(lumbar_patient):
    """Contrast injected epidurally can reach every foramen and the hiatus: the epidural
    fat, the foraminal fat, the sacral canal and hiatus form one connected region."""
    p = lumbar_patient
    T = p.tissues
    ids = [T.label(n) for n in ("epidural_fat", "foramen", "sacral_hiatus", "sacral_foramen",
                                "epidural_venous_plexus")]
    comp, _ = ndimage.label(np.isin(p.labels, ids))

    def cid(name):
        return comp[tuple(np.rint(p.voxel_of(p.landmark(name))).astype(int))]

    ref = cid("L4-L5.interlaminar")
    assert ref != 0
    names = [k for k in p.landmarks
             if k.endswith(".interlaminar") or ".foramen." in k or k == "sacral_hiatus"]
    assert len(names) > 25
    assert all(cid(k) == ref for k in names)
    # ...and the dura seals the thecal sac: CSF is never face-connected to epidural fat
    both, _ = ndimage.label(np.isin(p.labels, [*ids, T.label("csf")]))
    csf_ids = np.unique(both[p.labels == T.label("csf")])
    assert both[tuple(np.rint(p.voxel_of(p.landmark("L4-L5.interlaminar"))).astype(int))] \
        not in set(csf_ids.tolist())


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(15.0, 60.0), st.integers(0, 3))
def test_any_parameters_give_a_consistent_spine(seed, bmi, grade):
    m = build_model("lumbar", bmi=bmi, degeneration=grade, seed=seed)
    V, L = m.vertebrae, m.landmarks
    z = [V[n].center_mm[2] for n in LEVELS]
    assert all(a > b for a, b in zip(z, z[1:], strict=False))
    assert 30.0 <= m.meta["lordosis_L1_S1_deg"] <= 70.0
    assert all(h > 3.0 for h in m.meta["disc_heights_mm"].values())
    for u, b in zip(LEVELS[2:-1], LEVELS[3:], strict=False):
        for side in ("right", "left"):
            f = L[f"{u}-{b}.foramen.{side}"].position_mm
            # the foramen target lies below the pedicle of the level above, above the next
            if b != "S1":
                assert L[f"{b}.pedicle.{side}"].position_mm[2] < f[2]
            assert f[2] < L[f"{u}.pedicle.{side}"].position_mm[2]
            assert np.sign(f[0]) == (1 if side == "right" else -1)
