"""``needleguide evaluate`` through its real entry point."""

from __future__ import annotations

import json

from needleguide.cli import main


def test_bad_target_is_a_user_error(capsys):
    assert main(["evaluate", "bones", "--n", "1"]) == 2
    assert "target" in capsys.readouterr().err


def test_bad_n_is_a_user_error(capsys):
    assert main(["evaluate", "levels", "--n", "0"]) == 2
    assert "n" in capsys.readouterr().err


def test_levels_json_has_the_fixed_keys(capsys):
    assert main(["evaluate", "levels", "--n", "1", "--seed", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["accuracy"]) == {"fluoro_ap", "fluoro_lateral", "us_sweep", "with_anchor"}
    for k in ("cervical", "thoracic", "lumbar", "all"):
        assert set(out["accuracy"]["with_anchor"][k]) == {"ap", "lateral", "oblique"}
        assert k in out["abstention"]["without_anchor"] and k in out["ece"]
        assert k in out["baseline"]["ece"]
    assert set(out["baseline"]["accuracy"]) >= {"fluoro_ap", "fluoro_lateral"}
    assert 0.0 <= out["accuracy"]["fluoro_ap"] <= 1.0
    assert out["fps"] > 0


def test_contrast_json_has_the_fixed_keys(capsys, tmp_path):
    assert main(["evaluate", "contrast", "--n", "1", "--seed", "3", "--json",
                 "--overlays", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    for k in ("live", "dsa", "baseline"):
        assert set(out[k]) >= {"confusion", "intravascular", "alarm_latency_s"}
        assert set(out[k]["intravascular"]) >= {"sensitivity", "specificity"}
        assert set(out[k]["alarm_latency_s"]) == {"median", "p95"}
        assert sum(sum(row.values()) for row in out[k]["confusion"].values()) == out["cases"]
    assert out["cases"] == 6
    assert len(list(tmp_path.glob("contrast_3_*.png"))) == 6


def test_needle_without_its_evaluation_is_one_clear_error(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "needleguide.lab.eval_needle", None)
    assert main(["evaluate", "needle", "--n", "1"]) == 2
    err = capsys.readouterr().err
    assert "needle evaluation is not available" in err and "Traceback" not in err


def test_needle_json_and_overlays(capsys, tmp_path):
    assert main(["evaluate", "needle", "--n", "1", "--seed", "2003", "--json",
                 "--overlays", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    for mod in ("us", "fluoro"):
        for r in (out[mod], out["baseline"][mod]):
            assert set(r["tip_error_mm"]) == {"median", "p95"}
            assert set(r["angle_error_deg"]) == {"median", "p95"}
            assert {"detection_rate", "false_positive_rate", "fps"} <= set(r)
    assert out["held_out"] is True
    m = out["sequence"]["motion"]
    assert set(m["tip_error_mm"]) == {"median", "p95"} and 0 <= m["false_positive_rate"] <= 1
    pngs = sorted(p.name for p in tmp_path.glob("needle_*_*_*.png"))
    assert any(p.startswith("needle_us_") for p in pngs)
    assert any(p.startswith("needle_fluoro_") for p in pngs)
