"""Synthetic CT of the lumbar phantom, exported and imported back (one phantom build, 3 mm).

``needleguide synth-ct --dicom`` writes the CT (NIfTI + DICOM series) and the true labels;
``needleguide import-ct`` reads the DICOM series back without labels (HU classification)
and with TotalSegmentator-named masks cut from the true labels.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

from needleguide import geometry
from needleguide.anatomy.importer import import_ct
from needleguide.anatomy.tissues import default_tissue_table
from needleguide.cli import main

T = default_tissue_table()
SOFT_GROUPS = ["skin", "muscle", "cartilage", "ligament", "fluid", "neural", "vessel", "organ"]
SPINE = ("vertebral_body", "pedicle", "lamina", "spinous_process", "transverse_process",
         "superior_articular_process", "inferior_articular_process")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    rc = main(["synth-ct", "--region", "lumbar", "--seed", "0", "--spacing", "3",
               "--noise", "20", "--dicom", "--out", str(out)])
    assert rc == 0
    return out


def _groups(labels: np.ndarray) -> np.ndarray:
    return np.array([T[i].group if i in T else "?" for i in range(256)])[labels]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_synth_ct_outputs(synth):
    ct = nib.load(synth / "ct.nii.gz")
    lab = nib.load(synth / "labels.nii.gz")
    np.testing.assert_array_equal(ct.affine, lab.affine)
    hu, labels = np.asanyarray(ct.dataobj), np.asanyarray(lab.dataobj)
    assert hu.dtype == np.int16 and hu.shape == labels.shape
    assert abs(np.median(hu[labels == T.label("vertebral_body")]) - 300) < 10
    assert np.median(hu[labels == T.label("lamina")]) > 1000
    files = sorted((synth / "dicom").iterdir())
    assert len(files) == labels.shape[2]
    ds = pydicom.dcmread(files[0])
    assert ds.Modality == "CT" and (ds.Rows, ds.Columns) == labels.shape[1::-1]
    # first voxel of the NIfTI (RAS) is the first pixel of the first slice (LPS)
    first = geometry.lps_to_ras() @ np.r_[np.array(ds.ImagePositionPatient, float), 1]
    z0 = [geometry.apply(ct.affine, [0, 0, k])[2] for k in range(labels.shape[2])]
    assert np.abs(np.array(z0) - first[2]).min() < 0.01
    np.testing.assert_allclose(first[:2], ct.affine[:2, 3], atol=0.01)
    verts = json.loads((synth / "vertebrae.json").read_text())
    assert {"L4", "L5", "S1"} <= set(verts)


def test_phantom_ct_imported_without_labels_recovers_bone_and_soft_tissue(synth, tmp_path):
    assert main(["import-ct", str(synth / "dicom"), "--out", str(tmp_path)]) == 0
    truth = np.asanyarray(nib.load(synth / "labels.nii.gz").dataobj)
    img = nib.load(tmp_path / "labels.nii.gz")
    got = np.asanyarray(img.dataobj)
    np.testing.assert_allclose(img.affine, nib.load(synth / "labels.nii.gz").affine, atol=1e-3)
    g0, g1 = _groups(truth), _groups(got)
    d_bone = _dice(g0 == "bone", g1 == "bone")
    d_soft = _dice(np.isin(g0, SOFT_GROUPS), np.isin(g1, SOFT_GROUPS))
    d_fat = _dice(g0 == "fat", g1 == "fat")
    print(f"Dice bone {d_bone:.4f} soft tissue {d_soft:.4f} fat {d_fat:.4f}")
    assert d_bone > 0.9 and d_soft > 0.9 and d_fat > 0.9
    assert (got[truth == 0] == 0).mean() > 0.999  # outside air stays outside


@pytest.mark.parametrize("with_cord", [True, False])
def test_totalseg_masks_from_phantom_give_ordered_vertebrae(synth, tmp_path, with_cord):
    lab = nib.load(synth / "labels.nii.gz")
    labels, aff = np.asanyarray(lab.dataobj), lab.affine
    truth = json.loads((synth / "vertebrae.json").read_text())
    names = [n for n in truth if n[0] in "TL"]
    idx = np.argwhere(np.isin(labels, [T.label(n) for n in SPINE]))
    pts = geometry.apply(aff, idx.astype(float))
    slab = np.stack([np.abs((pts - truth[n]["center_mm"]) @ truth[n]["superior"])
                     for n in names], axis=1)
    who = np.argmin(slab, axis=1)  # each spine voxel to the level whose slab it is in
    seg = tmp_path / "seg"
    seg.mkdir()
    masks = {f"vertebrae_{n}": tuple(idx[who == q].T) for q, n in enumerate(names)}
    masks["sacrum"] = np.nonzero(labels == T.label("sacrum"))
    masks["iliopsoas_left"] = np.nonzero(labels == T.label("psoas"))
    masks["gluteus_maximus_right"] = np.nonzero(labels == T.label("gluteal_muscle"))
    if with_cord:
        masks["spinal_cord"] = np.nonzero(labels == T.label("spinal_cord"))
    for name, where in masks.items():
        m = np.zeros(labels.shape, np.uint8)
        m[where] = 1
        nib.save(nib.Nifti1Image(m, aff), seg / f"{name}.nii.gz")
    p = import_ct(synth / "dicom", seg)
    assert list(p.vertebrae) == names  # cranio-caudal, as in the phantom
    z = [v.center_mm @ v.superior for v in p.vertebrae.values()]
    assert all(a > b for a, b in zip(z, z[1:], strict=False))
    for n, v in p.vertebrae.items():
        ref = truth[n]
        assert np.linalg.norm(v.center_mm - ref["center_mm"]) < 3.0, n
        assert v.superior @ ref["superior"] > 0.99 and v.anterior @ ref["anterior"] > 0.99, n
        assert abs(v.body_height_mm - ref["body_height_mm"]) < 5.0, n
        assert p.landmarks[f"{n}.body"].tissue == "vertebral_body"
        assert v.extra["canal_from"] == ("spinal_cord" if with_cord else "foramen")
    assert (p.labels[masks["sacrum"]] == T.label("sacrum")).all()
    assert (p.labels[masks["iliopsoas_left"]] == T.label("psoas")).all()
    assert (p.labels[masks["gluteus_maximus_right"]] == T.label("gluteal_muscle")).all()


def test_phantom_files_round_trip_through_import_ct(synth, tmp_path):
    """Our own labels.nii.gz (+ landmarks.json, vertebrae.json beside it) come back exact."""
    out = tmp_path / "o"
    assert main(["import-ct", str(synth / "ct.nii.gz"), "--labels",
                 str(synth / "labels.nii.gz"), "--out", str(out)]) == 0
    a, b = nib.load(synth / "labels.nii.gz"), nib.load(out / "labels.nii.gz")
    np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
    np.testing.assert_array_equal(a.affine, b.affine)
    for name in ("landmarks.json", "vertebrae.json"):
        assert json.loads((out / name).read_text()) == json.loads((synth / name).read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert meta["labels_mode"] == "ids" and meta["unknown_voxels"] == 0
