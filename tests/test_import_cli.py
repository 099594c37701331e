"""``needleguide import-ct`` end to end through the real entry point."""

from __future__ import annotations

import json

import imageio.v3 as iio
import nibabel as nib
import numpy as np

from needleguide.anatomy.synthetic_ct import save_ct_dicom, save_ct_nifti, synthetic_ct
from needleguide.anatomy.tissues import default_tissue_table
from needleguide.cli import main
from test_import import _ts_masks, toy_spine

T = default_tissue_table()


def test_import_ct_cli_with_totalseg_masks(tmp_path, capsys):
    toy = toy_spine()
    save_ct_dicom(synthetic_ct(toy, noise_hu=10, seed=2), toy.VoxelToPatient, tmp_path / "dcm")
    seg = tmp_path / "seg"
    seg.mkdir()
    for name, m in _ts_masks(toy).items():
        nib.save(nib.Nifti1Image(m.astype(np.uint8), toy.VoxelToPatient), seg / f"{name}.nii.gz")
    out = tmp_path / "out"
    rc = main(["import-ct", str(tmp_path / "dcm"), "--labels", str(seg), "--out", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "mystery_structure" in err and "warning" in err
    img = nib.load(out / "labels.nii.gz")
    labels = np.asanyarray(img.dataobj)
    assert labels.shape == toy.shape and labels.dtype == np.uint8
    np.testing.assert_allclose(img.affine, toy.VoxelToPatient, atol=1e-4)
    assert (labels == T.label("vertebral_body")).sum() > 1000
    ct = nib.load(out / "ct.nii.gz")
    assert abs(float(np.median(np.asanyarray(ct.dataobj)[labels == T.label("aorta")])) - 40) < 10
    tissues = json.loads((out / "tissues.json").read_text())
    assert tissues[str(T.label("bone_cortical"))]["name"] == "bone_cortical"
    lms = json.loads((out / "landmarks.json").read_text())
    np.testing.assert_allclose(lms["L4.body"]["ras_mm"], [0, 10, -18], atol=2.0)
    verts = json.loads((out / "vertebrae.json").read_text())
    assert list(verts) == ["L2", "L3", "L4", "L5"]
    png = iio.imread(out / "overview.png")
    assert png.ndim == 3 and png.shape[0] > 300 and png[..., :3].std() > 20


def test_import_ct_cli_resample_without_labels(tmp_path):
    toy = toy_spine()
    save_ct_nifti(synthetic_ct(toy), toy.VoxelToPatient, tmp_path / "ct.nii.gz")
    rc = main(["import-ct", str(tmp_path / "ct.nii.gz"), "--spacing", "4", "--out",
               str(tmp_path / "o")])
    assert rc == 0
    img = nib.load(tmp_path / "o" / "labels.nii.gz")
    np.testing.assert_allclose(np.linalg.norm(img.affine[:3, :3], axis=0), 4.0)
    labels = np.asanyarray(img.dataobj)
    assert {T.label("bone_cancellous"), T.label("subcutaneous_fat")} <= set(np.unique(labels))


def test_import_ct_cli_bad_input_one_line(tmp_path, capsys):
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8bnope")
    (tmp_path / "empty").mkdir()
    for args in (["import-ct", str(tmp_path / "missing.nii"), "--out", str(tmp_path / "o")],
                 ["import-ct", str(tmp_path / "bad.nii.gz"), "--out", str(tmp_path / "o")],
                 ["import-ct", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ct:") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
