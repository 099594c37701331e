"""``needleguide import-ct`` refuses bad input through the real entry point: exit 2, one
``error:`` line, nothing written (no output folder, no stray temporary files)."""

from __future__ import annotations

import json
import struct

import nibabel as nib
import numpy as np
import pytest

from needleguide.anatomy.synthetic_ct import save_ct_dicom
from needleguide.cli import main

AFF = np.diag([2.0, 2.0, 2.0, 1.0])
AFF[:3, 3] = [-15.0, -13.0, -11.0]
SHAPE = (16, 14, 12)


def _ct() -> np.ndarray:
    hu = np.full(SHAPE, -1000.0, np.float32)
    hu[4:12, 2:12, 2:10] = 40.0
    hu[6:10, 4:8, 2:10] = 300.0
    return hu


def _labels() -> np.ndarray:  # our ids, every non-air voxel labelled
    lab = np.zeros(SHAPE, np.uint8)
    lab[4:12, 2:12, 2:10] = 3  # paraspinal_muscle
    lab[6:10, 4:8, 2:10] = 6  # vertebral_body
    return lab


def _save(data, aff, path) -> None:
    nib.save(nib.Nifti1Image(data, aff), str(path))


def _raw(data, path, srows=None, pixdim=None) -> None:
    """A .nii with header fields as given (nibabel would 'fix' them on save)."""
    h = nib.Nifti1Header()
    h.set_data_shape(data.shape)
    h.set_data_dtype(data.dtype)
    h["pixdim"][1:4] = 2.0
    if srows is not None:
        h["sform_code"], h["qform_code"] = 1, 0
        h["srow_x"], h["srow_y"], h["srow_z"] = srows[0], srows[1], srows[2]
    else:
        h["sform_code"], h["qform_code"] = 0, 1
    nib.save(nib.Nifti1Image(data, None, header=h), str(path))
    if pixdim is not None:  # pixdim[1] is the float32 at byte 80
        b = bytearray(path.read_bytes())
        b[80:84] = struct.pack("<f", pixdim)
        path.write_bytes(bytes(b))


def _refused(tmp_path, capsys, args, *needles, subprocess: bool = False) -> str:
    """Run import-ct (in-process, or as ``python -m needleguide`` to see the real stderr,
    loggers included) and check: exit 2, one ``error:`` line, nothing written."""
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = tmp_path / "out"
    argv = ["import-ct", *map(str, args), "--out", str(out)]
    if subprocess:
        import subprocess as sp
        import sys

        r = sp.run([sys.executable, "-m", "needleguide", *argv], capture_output=True,
                   text=True, timeout=120)
        assert r.returncode == 2 and not r.stdout.strip(), (r.returncode, r.stdout)
        err = r.stderr
    else:
        assert main(argv) == 2
        err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert not out.exists()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    return lines[0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_voxels(tmp_path, capsys, bad):
    hu = _ct()
    hu[4, 4, 4] = bad
    _save(hu, AFF, tmp_path / "ct.nii.gz")
    _refused(tmp_path, capsys, [tmp_path / "ct.nii.gz"], "NaN or infinite")


@pytest.mark.parametrize("pixdim", [0.0, -2.0, np.nan])
def test_zero_negative_nan_voxel_size(tmp_path, capsys, pixdim):
    _raw(_ct(), tmp_path / "ct.nii", pixdim=pixdim)
    _refused(tmp_path, capsys, [tmp_path / "ct.nii"], "pixdim", "positive",
             subprocess=pixdim == 0.0)  # nibabel logs its 'fix' of a zero pixdim: not shown


@pytest.mark.parametrize("what", ["zero column", "nan", "collinear"])
def test_degenerate_affine(tmp_path, capsys, what):
    a = AFF.copy()
    if what == "zero column":
        a[:3, 1] = 0
    elif what == "nan":
        a[1, 1] = np.nan
    else:
        a[:3, 2] = a[:3, 0]
    _raw(_ct(), tmp_path / "ct.nii", srows=a[:3])
    _refused(tmp_path, capsys, [tmp_path / "ct.nii"], "ct:")


def test_labels_on_another_grid_need_the_flag_and_must_overlap(tmp_path, capsys):
    _save(_ct(), AFF, tmp_path / "ct.nii.gz")
    coarse = AFF @ np.diag([2.0, 2.0, 2.0, 1.0])
    coarse[:3, 3] += 1.0  # 4 mm voxels covering the same box as the CT's 2 mm ones
    _save(_labels()[::2, ::2, ::2], coarse, tmp_path / "half.nii.gz")
    _refused(tmp_path, capsys, [tmp_path / "ct.nii.gz", "--labels", tmp_path / "half.nii.gz"],
             "another grid", "--resample-labels")
    shifted = coarse.copy()
    shifted[0, 3] += 10.0  # 10 of 32 mm off to the side: 69 % overlap
    _save(_labels()[::2, ::2, ::2], shifted, tmp_path / "off.nii.gz")
    _refused(tmp_path, capsys, [tmp_path / "ct.nii.gz", "--labels", tmp_path / "off.nii.gz",
                                "--resample-labels"], "lies on the CT", "95%")
    out = tmp_path / "ok"
    assert main(["import-ct", str(tmp_path / "ct.nii.gz"), "--labels",
                 str(tmp_path / "half.nii.gz"), "--resample-labels", "--label-names", "ours",
                 "--out", str(out)]) == 0
    assert nib.load(out / "labels.nii.gz").shape == SHAPE


def test_same_grid_in_another_axis_order_needs_no_flag(tmp_path, capsys):
    _save(_ct(), AFF, tmp_path / "ct.nii.gz")
    flip = AFF.copy()  # axis 0 stored the other way round: same voxel centres
    flip[0, 0], flip[0, 3] = -2.0, AFF[0, 3] + 2.0 * (SHAPE[0] - 1)
    _save(_labels()[::-1], flip, tmp_path / "seg.nii.gz")
    out = tmp_path / "o"
    assert main(["import-ct", str(tmp_path / "ct.nii.gz"), "--labels",
                 str(tmp_path / "seg.nii.gz"), "--label-names", "ours", "--out", str(out)]) == 0
    got = np.asanyarray(nib.load(out / "labels.nii.gz").dataobj)
    np.testing.assert_array_equal(got, _labels())


@pytest.mark.parametrize("spacing", ["0", "-0.5"])
def test_dicom_zero_or_negative_pixel_spacing(tmp_path, capsys, spacing):
    import pydicom

    save_ct_dicom(_ct(), AFF, tmp_path / "dcm")
    for f in sorted((tmp_path / "dcm").iterdir()):
        ds = pydicom.dcmread(f)
        ds.PixelSpacing = [spacing, "2"]
        ds.save_as(f)
    _refused(tmp_path, capsys, [tmp_path / "dcm"], "PixelSpacing", "positive")


def test_ambiguous_label_ids_are_refused(tmp_path, capsys):
    _save(_ct(), AFF, tmp_path / "ct.nii.gz")
    seg = np.zeros(SHAPE, np.uint8)  # id 7: v1 aorta, v2 pancreas; id 8: v1 IVC, v2 adrenal
    seg[4:6, 8:11, 2:10] = 7
    seg[10:12, 8:11, 2:10] = 8
    _save(seg, AFF, tmp_path / "seg.nii.gz")
    line = _refused(tmp_path, capsys, [tmp_path / "ct.nii.gz", "--labels",
                                       tmp_path / "seg.nii.gz"], "cannot tell", subprocess=True)
    for choice in ("--label-names", "ours", "totalseg-v1", "totalseg-v2", "FILE.json"):
        assert choice in line
    out = tmp_path / "o"  # naming the table is the way out
    assert main(["import-ct", str(tmp_path / "ct.nii.gz"), "--labels",
                 str(tmp_path / "seg.nii.gz"), "--label-names", "totalseg-v1", "--out",
                 str(out)]) == 0
    assert json.loads((out / "meta.json").read_text())["structures"] == {
        "aorta": "aorta", "inferior_vena_cava": "ivc"}


def test_bad_label_names_value(tmp_path, capsys):
    _save(_ct(), AFF, tmp_path / "ct.nii.gz")
    _save(_labels(), AFF, tmp_path / "seg.nii.gz")
    _refused(tmp_path, capsys, [tmp_path / "ct.nii.gz", "--labels", tmp_path / "seg.nii.gz",
                                "--label-names", "totalsegmentator"], "label_names", "ours")


def test_out_folder_of_another_command_needs_force(tmp_path, capsys):
    _save(_ct(), AFF, tmp_path / "ct.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "landmarks.json").write_text('{"phantom": 1}\n')
    (out / "meta.json").write_text('{"region": "lumbar"}\n')
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["import-ct", str(tmp_path / "ct.nii.gz"), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --out:") and "--force" in lines[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert main(["import-ct", str(tmp_path / "ct.nii.gz"), "--out", str(out), "--force"]) == 0
    assert json.loads((out / "meta.json").read_text())["command"] == "import-ct"
    # its own earlier output is simply replaced
    assert main(["import-ct", str(tmp_path / "ct.nii.gz"), "--out", str(out)]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
