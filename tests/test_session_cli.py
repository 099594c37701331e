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
    assert_report_is_readable(html)


def visible_text(html: str) -> str:
    """The report's text as a reader sees it: no tags, no embedded images, no style."""
    import re

    html = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    html = re.sub(r"data:[a-z/]+;base64,[A-Za-z0-9+/=]+", " ", html)
    return re.sub(r"<[^>]+>", " ", html)


def assert_report_is_readable(html: str) -> None:
    """No Python reprs, numbers rounded, the video embedded."""
    import re

    text = visible_text(html)
    for repr_ in ("{'", "'}", "None", "True", "False", "['", "np.", "array("):
        assert repr_ not in text, (repr_, text[max(0, text.find(repr_) - 80):][:160])
    long = re.findall(r"\d+\.\d{4,}", text)
    assert not long, long
    assert "<video" in html and "src='procedure.mp4'" in html and "poster='data:image/png" in html


def test_simulate_report_under_ultrasound_says_what_the_operator_went_by(tmp_path):
    res = CliRunner().invoke(app, ["simulate", "--procedure", "sacroiliac", "--side", "right",
                                   "--modality", "us", "--seed", "1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report.html").read_text()
    assert_report_is_readable(html)
    session = json.loads((tmp_path / "session.json").read_text())[0]
    assert "Guidance: the needle analyser" in html
    if session["detection_rate"] == 0.0:  # never found: said beside the result
        assert "never found the needle: the operator went by the plan" in html
    assert "none (ultrasound)" in visible_text(html)  # no X-ray figures for US


def test_simulate_report_uses_the_commands_display_polarity(tmp_path):
    res = CliRunner().invoke(app, ["simulate", "--procedure", "sacroiliac", "--side", "right",
                                   "--modality", "fluoro", "--display", "white-bone",
                                   "--seed", "1", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report.html").read_text()
    assert_report_is_readable(html)
    assert "white-bone display" in html and "black-bone display" not in html
    assert json.loads((tmp_path / "session.json").read_text())[0]["display"] == "white-bone"
