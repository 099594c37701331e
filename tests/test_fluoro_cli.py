"""``needleguide fluoro`` end to end, files re-read by their readers."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np

from needleguide.cli import main


def test_fluoro_cli_oblique_with_needle_advance(tmp_path):
    out = tmp_path / "fl"
    rc = main(["fluoro", "--region", "lumbar", "--view", "oblique-right", "--level", "L4-L5",
               "--seed", "0", "--out", str(out), "--pixels", "128", "--spacing", "3",
               "--needle-to", "L4-L5.foramen.right"])
    assert rc == 0
    img = imageio.imread(out / "fluoro.png")
    assert img.shape == (128, 128) and img.dtype == np.uint8 and img.std() > 10
    meta = json.loads((out / "frame.json").read_text())
    assert meta["modality"] == "fluoro" and meta["settings"]["view"] == "oblique-right"
    assert len(meta["ImageToPatient"]) == 4
    assert meta["dose"]["air_kerma_mgy"] > 0 and meta["cumulative_dose"]["dap_gy_cm2"] > 0
    assert meta["truth"]["needle_visible"]
    reader = imageio.get_reader(out / "advance.mp4")
    n = sum(1 for _ in reader)
    adv = json.loads((out / "advance.json").read_text())
    assert n == adv["frames"] > 10
    held = [f["last_image_hold"] for f in adv["per_frame"]]
    assert any(held) and not all(held)
    # fluoro time counts beam-on pulses only (last-image hold is free)
    pulses = held.count(False)
    assert abs(adv["cumulative_dose"]["fluoro_time_s"] - pulses / 15.0) < 1e-9


def test_fluoro_cli_bad_input(tmp_path, capsys):
    assert main(["fluoro", "--kvp", "200", "--out", str(tmp_path)]) == 2
    assert "kvp" in capsys.readouterr().err
