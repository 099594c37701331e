"""`needleguide advise` through its real entry point: rich table, --json, --cds-hooks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from needleguide.advisor import load_evidence
from needleguide.cli import main
from needleguide.procedures import PROCEDURE_IDS

CARD_KEYS = {"uuid", "summary", "detail", "indicator", "source", "suggestions",
             "selectionBehavior", "overrideReasons", "links", "extension"}


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def check_cds_hooks_response(resp: dict) -> None:
    """The CDS Hooks 2.0 card schema (required fields, enumerations, summary < 140)."""
    assert set(resp) <= {"cards", "systemActions"} and isinstance(resp["cards"], list)
    for card in resp["cards"]:
        assert set(card) <= CARD_KEYS, set(card) - CARD_KEYS
        assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        src = card["source"]
        assert set(src) <= {"label", "url", "icon", "topic"} and src["label"]
        for link in card.get("links", []):
            assert set(link) <= {"label", "url", "type", "appContext"}
            assert link["label"] and link["url"].startswith("https://")
            assert link["type"] in ("absolute", "smart")
        if "suggestions" in card:
            assert card["selectionBehavior"] in ("at-most-one", "any")
            for s in card["suggestions"]:
                assert set(s) <= {"label", "uuid", "isRecommended", "actions"} and s["label"]
            if card["selectionBehavior"] == "at-most-one":
                assert sum(bool(s.get("isRecommended")) for s in card["suggestions"]) <= 1


def test_json_output_is_the_fixed_schema(capsys):
    rc, out, _ = _run(["advise", "--procedure", "sacroiliac", "--bmi", "36", "--pregnant",
                       "--json"], capsys)
    assert rc == 0
    d = json.loads(out)
    assert set(d) == {"procedure", "ranking", "warnings"} and d["procedure"] == "sacroiliac"
    assert [r["modality"] for r in d["ranking"]][0] == "fluoro"
    scores = [r["score"] for r in d["ranking"]]
    assert scores == sorted(scores, reverse=True)
    ids = load_evidence().ids
    for r in d["ranking"]:
        for x in r["reasons"]:
            assert x["evidence"] and set(x["evidence"]) <= ids


def test_all_interface_flags_are_accepted(capsys):
    rc, out, err = _run([
        "advise", "--procedure", "lumbar-transforaminal", "--pregnant", "--age", "40",
        "--bmi", "31", "--contrast-allergy", "mild", "--egfr", "28", "--diabetes",
        "--anticoagulated", "--degenerative", "--hardware", "--level", "L5-S1",
        "--us-experience", "novice", "--fluoro-experience", "expert", "--no-us",
        "--no-fluoro", "--no-dsa", "--no-ct", "--json"], capsys)
    assert rc == 0, err
    d = json.loads(out)
    assert d["ranking"][0]["modality"] == "landmark"  # the only modality left
    assert any(w["severity"] == "critical" for w in d["warnings"])


def test_rich_table_output(capsys):
    rc, out, _ = _run(["advise", "--procedure", "cervical-transforaminal"], capsys)
    assert rc == 0
    assert "Cervical transforaminal" in out and "fluoro-dsa" in out
    assert "CRITICAL" in out and "[ctf-reviews" in out  # ids survive rich markup
    assert "iv-mclean-cervical:" in out and "McLean" in out  # evidence key


@pytest.mark.parametrize("pid", PROCEDURE_IDS)
def test_cds_hooks_cards_follow_the_schema(pid, capsys):
    rc, out, _ = _run(["advise", "--procedure", pid, "--pregnant", "--contrast-allergy",
                       "severe", "--cds-hooks"], capsys)
    assert rc == 0
    resp = json.loads(out)
    check_cds_hooks_response(resp)
    assert resp["cards"][0]["extension"]["org.needleguide.ranking"][0]["score"] >= 1


def test_cds_hooks_critical_card_and_links(capsys):
    _, out, _ = _run(["advise", "--procedure", "cervical-transforaminal", "--cds-hooks"],
                     capsys)
    cards = json.loads(out)["cards"]
    assert cards[0]["summary"].startswith("Cervical transforaminal")
    assert "fluoroscopy with DSA first" in cards[0]["summary"]
    crit = [c for c in cards if c["indicator"] == "critical"]
    assert crit and "intravascular" in crit[0]["summary"]
    urls = [lk["url"] for c in cards for lk in c.get("links", [])]
    assert "https://pubmed.ncbi.nlm.nih.gov/33441430/" in urls


def test_cds_hooks_is_deterministic(capsys):
    argv = ["advise", "--procedure", "caudal", "--pregnant", "--cds-hooks"]
    _, a, _ = _run(argv, capsys)
    _, b, _ = _run(argv, capsys)
    assert a == b


@pytest.mark.parametrize("argv, fragment", [
    (["advise", "--procedure", "elbow"], "choose one of: third-occipital"),
    (["advise", "--procedure", "caudal", "--bmi", "500"], "allowed range [10.0, 100.0]"),
    (["advise", "--procedure", "caudal", "--contrast-allergy", "bad"], "'severe'"),
    (["advise", "--procedure", "caudal", "--json", "--cds-hooks"], "choose one"),
])
def test_bad_input_exits_2_with_one_line(argv, fragment, capsys):
    rc, out, err = _run(argv, capsys)
    assert rc == 2 and out == ""
    assert fragment in err and err.count("\n") == 1 and err.startswith("error: ")


def test_console_script_subprocess():
    exe = shutil.which("needleguide")
    cmd = [exe] if exe else [sys.executable, "-m", "needleguide"]
    p = subprocess.run([*cmd, "advise", "--procedure", "knee", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["ranking"][0]["modality"] == "us"
    p = subprocess.run([*cmd, "advise", "--procedure", "knee", "--bmi", "500"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--bmi" in p.stderr and "Traceback" not in p.stderr
