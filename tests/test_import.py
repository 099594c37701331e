"""CT import: NIfTI / DICOM round trips, HU classification, TotalSegmentator labels."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

from needleguide import geometry
from needleguide.anatomy import totalseg
from needleguide.anatomy.importer import CTPatient, import_ct
from needleguide.anatomy.nifti import save_labels
from needleguide.anatomy.patient import Patient, Vertebra
from needleguide.anatomy.synthetic_ct import (
    hu_lut,
    save_ct_dicom,
    save_ct_nifti,
    synthetic_ct,
)
from needleguide.anatomy.tissues import default_tissue_table
from needleguide.errors import UserError

T = default_tissue_table()
SOFT_GROUPS = ["skin", "muscle", "cartilage", "ligament", "fluid", "neural", "vessel", "organ"]
LEVEL_Z = {"L2": 54.0, "L3": 18.0, "L4": -18.0, "L5": -54.0}


def toy_spine(sp: float = 2.0) -> Patient:
    """Small trunk: skin, fat, muscle, aorta, four vertebrae (body, arch, spinous process),
    discs, canal with CSF and cord. RAS: anterior +y, superior +z."""
    L = T.label
    n = (int(120 / sp), int(100 / sp), int(160 / sp))
    aff = np.diag([sp, sp, sp, 1.0])
    aff[:3, 3] = [-60 + sp / 2, -50 + sp / 2, -80 + sp / 2]
    x, y, z = (aff[a, a] * np.indices(n)[a] + aff[a, 3] for a in range(3))
    lab = np.zeros(n, np.uint8)
    lab[(x / 55) ** 2 + (y / 45) ** 2 <= 1] = L("skin")
    lab[(x / 52) ** 2 + (y / 42) ** 2 <= 1] = L("subcutaneous_fat")
    lab[(x / 44) ** 2 + (y / 34) ** 2 <= 1] = L("paraspinal_muscle")
    lab[x**2 + (y - 25) ** 2 <= 36] = L("aorta")
    body_xy = (x / 20) ** 2 + ((y - 10) / 14) ** 2 <= 1
    r_canal = np.hypot(x, y + 12)
    verts = {}
    for name, zc in LEVEL_Z.items():
        lab[body_xy & (np.abs(z - zc) <= 13)] = L("vertebral_body")
        lab[(r_canal > 8) & (r_canal < 14) & (y < -4) & (np.abs(z - zc) <= 9)] = L("lamina")
        lab[(np.abs(x) < 3) & (y < -20) & (y > -32) & (np.abs(z - zc) <= 7)] = L(
            "spinous_process")
        if zc > -54:
            lab[body_xy & (np.abs(z - (zc - 18)) < 5)] = L("disc")
        verts[name] = Vertebra(name, np.array([0.0, 10.0, zc]), np.array([0, 0, 1.0]),
                               np.array([0, 1.0, 0]), 26, 40, 28)
    lab[r_canal <= 8] = L("csf")
    lab[r_canal <= 3] = L("spinal_cord")
    return Patient(labels=lab, VoxelToPatient=aff, tissues=T, vertebrae=verts)


@pytest.fixture(scope="module")
def toy() -> Patient:
    return toy_spine()


def _groups(labels: np.ndarray) -> np.ndarray:
    g = np.array([T[i].group if i in T else "?" for i in range(256)])
    return g[labels]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def world(p: Patient) -> np.ndarray:
    return geometry.apply(p.VoxelToPatient, np.indices(p.shape).reshape(3, -1).T.astype(float))


# ---- NIfTI -------------------------------------------------------------------------------
def test_nifti_round_trip_labels_and_affine_exact(toy, tmp_path):
    hu = synthetic_ct(toy, noise_hu=10, seed=1)
    save_ct_nifti(hu, toy.VoxelToPatient, tmp_path / "ct.nii.gz")
    save_labels(toy.labels, toy.VoxelToPatient, tmp_path / "seg.nii.gz")
    p = import_ct(tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz")
    assert isinstance(p, CTPatient) and p.meta["labels_mode"] == "ids"
    np.testing.assert_array_equal(p.labels, toy.labels)
    np.testing.assert_array_equal(p.VoxelToPatient, toy.VoxelToPatient)
    assert np.abs(p.hu - np.clip(np.rint(hu), -1024, None)).max() == 0
    # the file is a NIfTI nibabel reads with the same data and affine
    img = nib.load(tmp_path / "seg.nii.gz")
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), toy.labels)


def test_nifti_in_lps_orientation_lands_in_the_same_place(toy, tmp_path):
    # store the volume flipped along x and y (LPS-like axes) and with x/z swapped
    flip = np.ascontiguousarray(toy.labels[::-1, ::-1, :].transpose(2, 1, 0))
    aff = toy.VoxelToPatient.copy()
    n = np.array(toy.shape)
    idx_map = np.zeros((4, 4))  # new index (a=k, b=j', c=i') -> old index (i, j, k)
    idx_map[0, 2], idx_map[0, 3] = -1, n[0] - 1
    idx_map[1, 1], idx_map[1, 3] = -1, n[1] - 1
    idx_map[2, 0] = 1
    idx_map[3, 3] = 1
    save_labels(flip, aff @ idx_map, tmp_path / "seg.nii.gz")
    save_ct_nifti(hu_lut(T)[flip], aff @ idx_map, tmp_path / "ct.nii.gz")
    p = import_ct(tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz")
    assert np.allclose(np.diag(p.VoxelToPatient)[:3], 2.0)  # reoriented to +x, +y, +z
    np.testing.assert_array_equal(p.label_at(world(toy)), toy.labels.ravel())


# ---- DICOM -------------------------------------------------------------------------------
def test_dicom_series_round_trip_geometry_and_lps(tmp_path):
    sp = np.array([0.7, 0.8, 2.5])
    n = (40, 30, 12)
    rot = geometry.rot_z(np.deg2rad(8.0))
    aff = geometry.make_transform(rot @ np.diag(sp), (-13.3, 21.7, -40.2))
    aff[:3, 2] *= -1  # slices stored from head to feet
    hu = np.full(n, -1000.0)
    hu[5:35, 5:25, :] = 40.0
    marker_ras = np.array([9.0, 28.0, -47.7])  # on the patient's right (+x)
    mi = np.rint(geometry.apply(np.linalg.inv(aff), marker_ras)).astype(int)
    hu[tuple(mi)] = 3000.0
    marker_ras = geometry.apply(aff, mi.astype(float))
    folder = save_ct_dicom(hu, aff, tmp_path / "dicom", uid_seed="t")
    files = sorted(folder.iterdir())
    assert len(files) == n[2]
    # file names shuffled: the reader must sort by position, not by name
    for f in files:
        f.rename(f.with_name("x" + f.name))
    perm = np.random.default_rng(5).permutation(len(files))
    assert (perm != np.arange(len(files))).sum() > len(files) // 2
    for f, q in zip(sorted(folder.iterdir()), perm, strict=True):
        f.rename(files[q])
    # independent check with pydicom: the marker's LPS x is negative (patient's right)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
        hu_px = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        if hu_px.max() >= 2999:
            r, c = np.unravel_index(np.argmax(hu_px), hu_px.shape)
            iop = np.array(ds.ImageOrientationPatient, float)
            dr, dc = (float(v) for v in ds.PixelSpacing)
            lps = np.array(ds.ImagePositionPatient, float) + c * dc * iop[:3] + r * dr * iop[3:]
            np.testing.assert_allclose(lps, marker_ras * [-1, -1, 1], atol=1e-3)
            assert lps[0] < 0
    p = import_ct(folder)
    assert p.meta["format"] == "dicom" and p.meta["n_slices"] == n[2]
    np.testing.assert_allclose(p.spacing_mm, sp, atol=1e-4)
    # every voxel centre of the original grid maps to the same HU (geometry within 0.01 mm)
    ijk = np.indices(n).reshape(3, -1).T.astype(float)
    back = geometry.apply(np.linalg.inv(p.VoxelToPatient), geometry.apply(aff, ijk))
    assert np.abs(back - np.rint(back)).max() * sp.max() < 0.01
    got = p.hu[tuple(np.rint(back).astype(int).T)]
    np.testing.assert_array_equal(got, hu.ravel())
    mk = np.argwhere(p.labels == T.label("metal"))
    assert len(mk) == 1
    pos = geometry.apply(p.VoxelToPatient, mk[0].astype(float))
    np.testing.assert_allclose(pos, marker_ras, atol=0.01)
    assert pos[0] > 0


# ---- synthetic CT ------------------------------------------------------------------------
def test_synthetic_ct_values_and_seeded_noise(toy):
    lut = hu_lut(T)
    assert lut[T.label("air")] == -1000 and lut[T.label("subcutaneous_fat")] == -100
    assert 40 <= lut[T.label("paraspinal_muscle")] <= 50 and lut[T.label("aorta")] == 40
    assert 5 <= lut[T.label("csf")] <= 15 and lut[T.label("disc")] == 80
    assert 200 <= lut[T.label("vertebral_body")] <= 400
    assert 1000 <= lut[T.label("lamina")] <= 1500 and lut[T.label("metal")] >= 3000
    a = synthetic_ct(toy, noise_hu=20, seed=3)
    b = synthetic_ct(toy, noise_hu=20, seed=3)
    c = synthetic_ct(toy, noise_hu=20, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    resid = a - lut[toy.labels]
    assert abs(resid.std() - 20) < 1.0


def test_synthetic_ct_imported_without_labels_recovers_bone_and_soft_tissue(toy, tmp_path):
    hu = synthetic_ct(toy, noise_hu=20, seed=0)
    save_ct_dicom(hu, toy.VoxelToPatient, tmp_path / "dicom")
    p = import_ct(tmp_path / "dicom")
    g0, g1 = _groups(toy.labels), _groups(p.labels)
    assert dice(g0 == "bone", g1 == "bone") > 0.9
    assert dice(np.isin(g0, SOFT_GROUPS), np.isin(g1, SOFT_GROUPS)) > 0.9
    assert dice(g0 == "fat", g1 == "fat") > 0.9
    assert dice(toy.labels == 0, p.labels == 0) > 0.99
    assert (p.labels == T.label("skin")).any()


def test_ct_patient_roi_resamples_hu(toy, tmp_path):
    hu = synthetic_ct(toy)
    save_ct_nifti(hu, toy.VoxelToPatient, tmp_path / "ct.nii.gz")
    p = import_ct(tmp_path / "ct.nii.gz", spacing_mm=3.0)
    assert np.allclose(p.spacing_mm, 3.0) and p.hu.shape == p.shape
    r = p.roi([0, 10, -18], 30, 1.0)
    assert r.hu.shape == r.shape == (30, 30, 30)
    assert abs(float(r.hu[15, 15, 15]) - 300.0) < 1.0  # centre of the L4 body


# ---- TotalSegmentator --------------------------------------------------------------------
def test_totalseg_class_map_and_names():
    v1 = totalseg.TOTAL_V1  # TotalSegmentator v1.5.7 map_to_binary.class_map["total"]
    assert len(v1) == 104 and v1[7] == "aorta" and v1[18] == "vertebrae_L5"
    assert v1[22] == "vertebrae_L1" and v1[41] == "vertebrae_C1" and v1[58] == "rib_left_1"
    assert v1[81] == "rib_right_12" and v1[92] == "sacrum" and v1[100] == "autochthon_left"
    assert v1[104] == "urinary_bladder"
    assert all(totalseg.tissue_for(n) in T for n in v1.values() if n not in totalseg.FROM_HU)
    assert totalseg.tissue_for("heart_ventricle_left") == "blood_vessel"
    m = totalseg.TOTAL_V2
    assert len(m) == 117 and m[25] == "sacrum" and m[26] == "vertebrae_S1"
    assert m[27] == "vertebrae_L5" and m[50] == "vertebrae_C1" and m[63] == "inferior_vena_cava"
    assert m[79] == "spinal_cord" and m[86] == "autochthon_left" and m[117] == "costal_cartilages"
    expect = {"vertebrae_L3": "vertebral_body", "vertebrae_C6": "vertebral_body",
              "sacrum": "sacrum", "spinal_cord": "spinal_cord", "hip_left": "ilium",
              "femur_right": "femoral_head", "aorta": "aorta", "inferior_vena_cava": "ivc",
              "iliopsoas_left": "psoas", "autochthon_right": "paraspinal_muscle",
              "gluteus_maximus_left": "gluteal_muscle", "kidney_left": "kidney",
              "esophagus": "oesophagus", "thyroid_gland": "thyroid",
              "common_carotid_artery_left": "carotid", "rib_left_12": "rib",
              "iliac_artery_right": "blood_vessel"}
    for name, tissue in expect.items():
        assert totalseg.tissue_for(name) == tissue, name
        assert tissue in T
    assert totalseg.tissue_for("no_such_structure") is None
    assert all(totalseg.tissue_for(n) in T for n in m.values())


def _ts_masks(toy: Patient) -> dict[str, np.ndarray]:
    L = T.label
    z = toy.VoxelToPatient[2, 2] * np.arange(toy.shape[2]) + toy.VoxelToPatient[2, 3]
    x = toy.VoxelToPatient[0, 0] * np.arange(toy.shape[0]) + toy.VoxelToPatient[0, 3]
    bone = np.isin(toy.labels, [L("vertebral_body"), L("lamina"), L("spinous_process")])
    masks = {f"vertebrae_{k}": bone & (np.abs(z - zc) <= 17)[None, None, :]
             for k, zc in LEVEL_Z.items()}
    mus = toy.labels == L("paraspinal_muscle")
    masks.update({"spinal_cord": toy.labels == L("spinal_cord"),
                  "aorta": toy.labels == L("aorta"),
                  "autochthon_left": mus & (x < 0)[:, None, None],  # RAS: patient left −x
                  "autochthon_right": mus & (x >= 0)[:, None, None],
                  "mystery_structure": (toy.labels == L("subcutaneous_fat"))
                  & (x > 40)[:, None, None],
                  "liver": np.zeros(toy.shape, bool)})
    return masks


def _check_ts_patient(p: CTPatient, toy: Patient, masks) -> None:
    for name, tissue in [("aorta", "aorta"), ("autochthon_left", "paraspinal_muscle"),
                         ("spinal_cord", "spinal_cord"), ("vertebrae_L4", "vertebral_body"),
                         ("mystery_structure", "soft_tissue")]:
        assert (p.labels[masks[name]] == T.label(tissue)).all(), name
    assert list(p.vertebrae) == ["L2", "L3", "L4", "L5"]
    zs = [v.center_mm[2] for v in p.vertebrae.values()]
    assert all(a > b for a, b in zip(zs, zs[1:], strict=False))  # cranio-caudal
    for name, v in p.vertebrae.items():
        assert np.linalg.norm(v.center_mm - toy.vertebrae[name].center_mm) < 2.0
        assert v.superior @ [0, 0, 1] > 0.99 and v.anterior @ [0, 1, 0] > 0.99
        assert 20 < v.body_height_mm < 35 and 30 < v.body_width_mm < 45
    assert p.landmarks["L4.body"].tissue == "vertebral_body"
    np.testing.assert_allclose(p.landmark("L4.body"), [0, 10, -18], atol=2.0)
    assert p.meta["unknown_structures"] == {"mystery_structure": int(
        masks["mystery_structure"].sum())}


def test_totalseg_mask_folder(toy, tmp_path):
    save_ct_nifti(synthetic_ct(toy, noise_hu=10), toy.VoxelToPatient, tmp_path / "ct.nii.gz")
    masks = _ts_masks(toy)
    (tmp_path / "seg").mkdir()
    for name, m in masks.items():
        nib.save(nib.Nifti1Image(m.astype(np.uint8), toy.VoxelToPatient),
                 tmp_path / "seg" / f"{name}.nii.gz")
    p = import_ct(tmp_path / "ct.nii.gz", tmp_path / "seg")
    assert p.meta["labels_mode"] == "masks"
    _check_ts_patient(p, toy, masks)
    # without the cord, the canal is found as the hole of each vertebra
    (tmp_path / "seg" / "spinal_cord.nii.gz").unlink()
    q = import_ct(tmp_path / "ct.nii.gz", tmp_path / "seg")
    assert all(v.extra["canal_from"] == "foramen" for v in q.vertebrae.values())
    assert all(v.anterior @ [0, 1, 0] > 0.99 for v in q.vertebrae.values())


@pytest.mark.parametrize("how", ["sidecar", "header", "classmap"])
def test_totalseg_multilabel(toy, tmp_path, how):
    save_ct_nifti(synthetic_ct(toy), toy.VoxelToPatient, tmp_path / "ct.nii.gz")
    masks = _ts_masks(toy)
    ids = {v: k for k, v in totalseg.TOTAL_V2.items()}
    ids["mystery_structure"] = 200
    ml = np.zeros(toy.shape, np.uint8)
    for name, m in masks.items():
        ml[m] = ids[name]
    img = nib.Nifti1Image(ml, toy.VoxelToPatient)
    names = {ids[n]: n for n in masks}
    if how == "header":
        xml = "".join(f'<Label Key="{k}" Red="1" Green="0" Blue="0" Alpha="1">'
                      f"<![CDATA[{v}]]></Label>\n" for k, v in names.items())
        xml = f"<CaretExtension><LabelTable>{xml}</LabelTable></CaretExtension>"
        img.header.extensions.append(nib.nifti1.Nifti1Extension(0, xml.encode()))
    nib.save(img, tmp_path / "seg.nii.gz")
    if how == "sidecar":
        (tmp_path / "seg.json").write_text(json.dumps({str(k): v for k, v in names.items()}))
    kw = {"label_names": "totalseg"} if how == "classmap" else {}
    p = import_ct(tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz", **kw)
    assert p.meta["labels_mode"] == "names"
    if how == "classmap":  # id 200 is not in the v2 class map: unknown by id
        assert p.meta["unknown_structures"] == {"id 200": int(masks["mystery_structure"].sum())}
        masks = {k: v for k, v in masks.items() if k != "mystery_structure"}
        assert list(p.vertebrae) == ["L2", "L3", "L4", "L5"]
    else:
        _check_ts_patient(p, toy, masks)


# ---- bad input ---------------------------------------------------------------------------
def test_bad_input_is_one_clear_user_error(toy, tmp_path):
    (tmp_path / "garbage.nii.gz").write_bytes(b"not a nifti" * 20)
    (tmp_path / "slice.dcm").write_bytes(b"\0" * 300)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no dicom here")
    save_ct_nifti(synthetic_ct(toy), toy.VoxelToPatient, tmp_path / "ct.nii.gz")
    cases = [
        (lambda: import_ct(tmp_path / "missing.nii.gz"), "does not exist"),
        (lambda: import_ct(tmp_path / "garbage.nii.gz"), "cannot read"),
        (lambda: import_ct(tmp_path / "slice.dcm"), "cannot read"),
        (lambda: import_ct(tmp_path / "empty"), "no DICOM image slices"),
        (lambda: import_ct(tmp_path / "ct.nii.gz", tmp_path / "nope.nii.gz"), "labels:"),
        (lambda: import_ct(tmp_path / "ct.nii.gz", tmp_path / "empty"), "no NIfTI masks"),
        (lambda: import_ct(tmp_path / "ct.nii.gz", spacing_mm=0.01), "spacing_mm"),
    ]
    for fn, text in cases:
        with pytest.raises(UserError) as e:
            fn()
        assert text in str(e.value) and "\n" not in str(e.value)


def test_dicom_folder_with_two_series_and_stray_files(tmp_path):
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    big = np.full((8, 6, 10), 40.0)
    small = np.full((8, 6, 3), 300.0)
    save_ct_dicom(big, aff, tmp_path / "a", uid_seed="big")
    save_ct_dicom(small, aff, tmp_path / "b", uid_seed="small")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for sub in ("a", "b"):
        for f in (tmp_path / sub).iterdir():
            f.rename(mixed / f"{sub}_{f.name}")
    (mixed / "README.txt").write_text("not dicom")
    p = import_ct(mixed)
    assert p.shape == (8, 6, 10) and np.all(p.hu == 40)
    one = next(mixed.glob("b_*"))
    q = import_ct(one)  # one file: its own series
    assert q.shape == (8, 6, 3) and np.all(q.hu == 300)
    # uneven slice spacing is refused, not guessed
    ds = pydicom.dcmread(one)
    ds.ImagePositionPatient = [float(v) + (0.7 if i == 2 else 0) for i, v in
                               enumerate(ds.ImagePositionPatient)]
    ds.save_as(one)
    with pytest.raises(UserError, match="slice spacing varies"):
        import_ct(one)


def test_labelmap_on_another_grid_and_explicit_names_file(toy, tmp_path):
    save_ct_nifti(synthetic_ct(toy), toy.VoxelToPatient, tmp_path / "ct.nii.gz")
    coarse = toy.labels[::2, ::2, ::2]  # 4 mm grid, same first voxel centre
    aff = toy.VoxelToPatient @ np.diag([2.0, 2.0, 2.0, 1.0])
    ml = np.where(coarse == T.label("aorta"), 7, 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(ml, aff), tmp_path / "seg.nii.gz")
    (tmp_path / "names.json").write_text(json.dumps({"7": "aorta"}))
    with pytest.raises(UserError, match="another grid.*--resample-labels"):
        import_ct(tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz",
                  label_names=tmp_path / "names.json")
    p = import_ct(tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz",
                  label_names=tmp_path / "names.json", resample_labels=True)
    assert p.shape == toy.shape and p.meta["structures"] == {"aorta": "aorta"}
    assert p.tissue_name_at([0, 25, 0]) == "aorta"  # aorta centre, resampled onto the CT grid
    got, want = p.labels == T.label("aorta"), toy.labels == T.label("aorta")
    assert dice(got, want) > 0.7
    with pytest.raises(UserError, match="label_names"):
        import_ct(tmp_path / "ct.nii.gz", tmp_path / "seg.nii.gz",
                  label_names=tmp_path / "missing.json", resample_labels=True)


def test_hu_to_density():
    from needleguide.anatomy.synthetic_ct import hu_to_density_g_cm3

    rho = hu_to_density_g_cm3(np.array([-1000, -100, 0, 40, 300, 1500, 3000]))
    np.testing.assert_allclose(rho, [0.0012, 0.9, 1.0, 1.024, 1.18, 1.9, 2.8], atol=1e-4)
    assert np.all(np.diff(hu_to_density_g_cm3(np.linspace(-1100, 3000, 50))) >= 0)
