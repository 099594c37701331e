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
    assert set(out["accuracy"]) == {"fluoro_ap", "fluoro_lateral", "us_sweep"}
    assert set(out["baseline"]["accuracy"]) >= {"fluoro_ap", "fluoro_lateral"}
    assert 0.0 <= out["accuracy"]["fluoro_ap"] <= 1.0
    assert out["fps"] > 0
