"""``needleguide phantom`` through its real entry point."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from needleguide.cli import main


def test_phantom_cli_writes_everything(tmp_path, capsys):
    out = tmp_path / "ph"
    rc = main(["phantom", "--region", "lumbar", "--bmi", "35", "--degeneration", "1",
               "--seed", "2", "--spacing", "3", "--png-pixel", "2", "--out", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "built in" in err
    img = nib.load(str(out / "labels.nii.gz"))
    lab = np.asarray(img.dataobj)
    assert lab.dtype == np.uint8 and lab.max() > 40
    assert np.allclose(np.linalg.norm(img.affine[:3, :3], axis=0), 3.0)
    tissues = json.loads((out / "tissues.json").read_text())
    assert tissues["6"]["name"] == "vertebral_body"
    lms = json.loads((out / "landmarks.json").read_text())
    assert lms["L4-L5.foramen.right"]["tissue"] == "foramen"
    assert len(lms["sacral_hiatus"]["ras_mm"]) == 3
    for stem in ("axial_L4-L5", "axial_L4", "sagittal_mid", "sagittal_right_foramina",
                 "coronal"):
        png = out / f"{stem}.png"
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    # no temporary leftovers: only the output set's manifest, listing every file
    assert [p.name for p in out.glob(".*")] == [".needleguide.json"]
    manifest = json.loads((out / ".needleguide.json").read_text())
    assert manifest["command"] == "phantom"
    assert sorted(manifest["files"]) == sorted(p.name for p in out.iterdir()
                                               if not p.name.startswith("."))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("args, field", [
    (["--bmi", "5"], "bmi"),
    (["--region", "thoracic"], "region"),
    (["--degeneration", "7"], "degeneration"),
    (["--spacing", "0.01"], "spacing"),
    (["--spacing", "0.25"], "spacing"),  # whole region too big: use an ROI
])
def test_phantom_cli_bad_input_is_one_line(tmp_path, capsys, args, field):
    rc = main(["phantom", *args, "--out", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and field in err


def test_phantom_cli_unwritable_out(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    rc = main(["phantom", "--spacing", "3", "--out", str(f)])
    assert rc == 2
    assert capsys.readouterr().err.strip().startswith("error: --out")


def test_phantom_cli_cervical_region(tmp_path, capsys):
    out = tmp_path / "cx"
    rc = main(["phantom", "--region", "cervical", "--spacing", "3", "--png-pixel", "2",
               "--out", str(out)])
    assert rc == 0
    lms = json.loads((out / "landmarks.json").read_text())
    assert any(k.startswith("C") for k in lms)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 5 and "sagittal_mid.png" in pngs and "coronal.png" in pngs
    assert any(p.startswith("axial_C") for p in pngs)
