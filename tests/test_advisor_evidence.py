"""Evidence table: structure, the EVIDENCE.md section 7 corrections, and transcription."""

from __future__ import annotations

import copy
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest
import yaml

from needleguide.advisor.evidence import load_evidence, parse_evidence

EVIDENCE_MD = Path(__file__).resolve().parents[1].parent / "shared" / "EVIDENCE.md"


def _raw() -> dict:
    return yaml.safe_load(
        resources.files("needleguide.advisor").joinpath("evidence.yaml").read_text())


def test_table_is_versioned_and_covers_sections_1_to_5():
    t = load_evidence()
    assert re.fullmatch(r"\d+\.\d+\.\d+", t.version)
    per_section = Counter(r.section for r in t.rows)
    assert set(per_section) == {"1", "2", "3", "4", "5"}
    kinds = {r.kind for r in t.rows}
    assert {"guideline", "bmi", "patient-factor", "intravascular-detection"} <= kinds
    # every procedure of the catalogue has at least one row of its own
    from needleguide.procedures import PROCEDURE_IDS

    for pid in PROCEDURE_IDS:
        assert t.for_procedure(pid), pid


def test_caudal_100_percent_is_chen_2004_not_the_ajpmr_review():
    t = load_evidence()
    row = t["caudal-chen-2004"]
    assert "100%" in row.value and row.n == 70
    assert "Anesthesiology 2004;101:181" in row.citation
    for r in t.rows:
        if "AJPMR 2011" in r.citation:
            assert "100%" not in r.value and r.design == "review"
    assert any("Chen, Anesthesiology 2004" in c.right for c in t.corrections)


def test_narouze_corrections_kept():
    t = load_evidence()
    assert any("18(6):424" in c.right for c in t.corrections)
    assert t["ctf-narouze-feasibility"].design == "feasibility"
    assert t["ctf-narouze-feasibility"].favours is None  # not comparative
    assert not any("434" in r.citation for r in t.rows)


def test_key_figures_transcribed():
    t = load_evidence()
    assert "87.3%" in t["sij-jee-rct"].value and "98.2%" in t["sij-jee-rct"].comparator
    assert "0.09" in t["cmbb-meta-vascular"].value
    assert "71%" in t["iv-hong-lumbar"].value
    assert "62% (52/84)" in t["bmi-rauch-2009"].value
    assert "20-39" in t["bmi-smith-hip"].value
    assert "not a safe alternative" in t["gl-provenzano-2019"].value
    assert "1.5-3 mL" in t["gl-benzon-2021"].value
    assert "85%" in t["pf-level-choi"].value


@pytest.mark.skipif(not EVIDENCE_MD.exists(), reason="shared/EVIDENCE.md not beside the repo")
def test_every_number_in_the_table_appears_in_evidence_md():
    """No invented figures: each number in a row's value/comparator/n is in EVIDENCE.md."""
    md = EVIDENCE_MD.read_text().replace(",", "").replace("−", "-")
    md_numbers = set(re.findall(r"\d+(?:\.\d+)?", md))
    bad = []
    for r in load_evidence().rows:
        text = " ".join([r.value, r.comparator or "", str(r.n or "")]).replace(",", "")
        for num in re.findall(r"\d+(?:\.\d+)?", text):
            if num not in md_numbers:
                bad.append((r.id, num))
    assert not bad, bad


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["rows"].append(copy.deepcopy(d["rows"][0])), "duplicate"),
    (lambda d: d["rows"][0].update(certainty="high"), "certainty"),
    (lambda d: d["rows"][0].update(modality="mri"), "modality"),
    (lambda d: d["corrections"][0]["rows"].append("no-such-row"), "unknown rows"),
    (lambda d: d.update(version="v1"), "version"),
])
def test_table_validation_rejects_bad_rows(mutate, message):
    data = copy.deepcopy(_raw())
    mutate(data)
    with pytest.raises(ValueError, match=message):
        parse_evidence(data)
