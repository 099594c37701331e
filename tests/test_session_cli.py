"""``needleguide simulate --json`` prints the fixed interface and writes the report."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from needleguide.cli import app

KEYS = {"procedure", "modality", "seed", "final_tip_error_mm", "tolerance_mm", "success",
        "passes", "procedure_time_s", "fluoro_time_s", "dap_gy_cm2",
        "reference_air_kerma_mgy", "contrast_ml", "events"}



def test_simulate_json_and_report(tmp_path):
    res = CliRunner().invoke(app, ["simulate", "--procedure", "lumbar-medial-branch",
                                   "--level", "L5", "--side", "right", "--modality", "us",
                                   "--bmi", "28", "--seed", "2", "--out", str(tmp_path),
                                   "--json"])
    assert res.exit_code == 0, res.output
    j = json.loads(res.stdout.strip().splitlines()[-1])
    assert KEYS <= set(j) and j["modality"] == "us" and j["seed"] == 2
    html = (tmp_path / "report.html").read_text()
    for section in ("Patient", "Advisor", "Events", "Key frames", "Plots",
                    "data:image/png;base64"):
        assert section in html
    assert (tmp_path / "procedure.mp4").stat().st_size > 1000
