"""Advisor engine: traceability of every rule and sentence, determinism, inputs, equipment."""

from __future__ import annotations

import itertools
import json

import pytest

from needleguide.advisor import (
    MODALITIES,
    AdviceRequest,
    advise,
    load_appraisals,
    load_evidence,
    missing_evidence,
)
from needleguide.advisor import rules as rules_mod
from needleguide.advisor.rules import RULES, Adjust, Rule
from needleguide.errors import UserError
from needleguide.procedures import PROCEDURE_IDS

# A spread of patients that fires every rule somewhere.
FACTOR_SETS = [
    {},
    {"pregnant": True, "bmi": 36, "contrast_allergy": "severe", "egfr": 25, "diabetes": True},
    {"age": 12, "anticoagulated": True, "us_experience": "novice", "no": "fluoro"},
    {"degenerative": True, "hardware": True, "contrast_allergy": "mild", "egfr": 40,
     "us_experience": "expert", "no": "dsa"},
    {"bmi": 41, "no": "us"},
]


def _requests():
    for pid, factors in itertools.product(PROCEDURE_IDS, FACTOR_SETS):
        kw = {k: v for k, v in factors.items() if k != "no"}
        if "no" in factors:
            kw[f"has_{factors['no']}"] = False
        yield AdviceRequest.build(procedure=pid, **kw)
    yield AdviceRequest.build(procedure="lumbar-transforaminal", level="L5-S1")
    yield AdviceRequest.build(procedure="stellate-ganglion", level="C7", anticoagulated=True)
    yield AdviceRequest.build(procedure="c7-medial-branch", us_experience="novice", age=15)


ALL_ADVICE = [advise(r) for r in _requests()]


def test_no_rule_appraisal_or_procedure_cites_a_missing_row():
    assert missing_evidence(load_appraisals()) == {}
    for r in RULES:
        assert r.evidence, f"rule {r.id} declares no evidence"
        assert r.description, f"rule {r.id} has no description"


def test_every_evidence_row_is_used():
    from needleguide.advisor.engine import ENGINE_ROWS
    from needleguide.procedures import load_catalogue

    used = load_appraisals().cited() | set(ENGINE_ROWS)
    used |= {e for r in RULES for e in r.evidence}
    used |= {e for p in load_catalogue() for e in p.evidence}
    assert load_evidence().ids - used == set()


def test_missing_rows_are_reported():
    fake = Rule("fake", "cites a row that does not exist", ("no-such-row",), "score",
                lambda c: [])
    assert missing_evidence(rules=[*RULES, fake]) == {"rule fake": ["no-such-row"]}


def test_engine_refuses_an_effect_citing_undeclared_rows(monkeypatch):
    rogue = Rule("rogue", "cites beyond its declaration", ("gl-acog-723",), "score",
                 lambda c: [Adjust("us", 1, "x", ("sij-jee-rct",))])
    monkeypatch.setattr(rules_mod, "RULES", [*RULES, rogue])
    monkeypatch.setattr("needleguide.advisor.engine.RULES", [*RULES, rogue])
    with pytest.raises(RuntimeError, match="rogue"):
        advise(procedure="knee")


def test_every_printed_sentence_cites_existing_rows():
    ids = load_evidence().ids
    fired = set()
    for a in ALL_ADVICE:
        fired |= set(a.rules_fired)
        for r in a.ranking:
            assert r.reasons
            for x in r.reasons:
                assert x.evidence and set(x.evidence) <= ids, (a.procedure, x)
        for w in a.warnings:
            assert w.evidence and set(w.evidence) <= ids, (a.procedure, w)
        for c in a.changes:
            assert c.evidence and set(c.evidence) <= ids, (a.procedure, c)
        for w in a.to_json()["warnings"]:
            assert w["evidence"]
    assert fired == {r.id for r in RULES}, {r.id for r in RULES} - fired


def test_every_modality_scored_once_in_range_and_sorted():
    for a in ALL_ADVICE:
        mods = [r.modality for r in a.ranking]
        assert sorted(mods) == sorted(MODALITIES)
        scores = [r.score for r in a.ranking]
        assert all(1 <= s <= 9 for s in scores) and scores == sorted(scores, reverse=True)


def test_deterministic():
    a = advise(procedure="sacroiliac", bmi=36, pregnant=True, contrast_allergy="severe")
    b = advise(procedure="sacroiliac", bmi=36, pregnant=True, contrast_allergy="severe")
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())


def test_json_schema_is_exactly_the_interface():
    d = advise(procedure="caudal", pregnant=True, has_dsa=False).to_json()
    assert set(d) == {"procedure", "ranking", "warnings"}
    for r in d["ranking"]:
        assert set(r) == {"modality", "score", "reasons"}
        assert r["modality"] in MODALITIES and isinstance(r["score"], int)
        for x in r["reasons"]:
            assert set(x) == {"text", "evidence"}
    for w in d["warnings"]:
        assert set(w) == {"severity", "text", "evidence"}
        assert w["severity"] in ("info", "warning", "critical")


@pytest.mark.parametrize("flag, modalities", [
    ("has_us", ["us"]), ("has_fluoro", ["fluoro", "fluoro-dsa"]),
    ("has_dsa", ["fluoro-dsa"]), ("has_ct", ["ct"]),
])
def test_equipment_flags_remove_modalities_with_a_reason(flag, modalities):
    a = advise(procedure="lumbar-transforaminal", **{flag: False})
    cli = {"has_us": "--no-us", "has_fluoro": "--no-fluoro", "has_dsa": "--no-dsa",
           "has_ct": "--no-ct"}[flag]
    for m in modalities:
        r = next(r for r in a.ranking if r.modality == m)
        assert r.score == 1 and not r.available
        assert any(cli in x.text and x.evidence for x in r.reasons)
    assert a.first.modality not in modalities


def test_what_would_change_the_ranking():
    assert advise(procedure="knee").changes == []  # nothing to relax: nothing reported
    a = advise(procedure="lumbar-medial-branch", bmi=35)
    assert [x.text for x in a.changes] == [
        "If BMI < 30: fluoro 8 > fluoro-dsa 8 > us 5 > ct 5 > landmark 3"]
    assert a.changes[0].evidence == ["bmi-rauch-2009", "bmi-no-cutoff"]
    b = advise(procedure="cervical-transforaminal", has_dsa=False)
    assert [c.text.split(":")[0] for c in b.changes] == ["With DSA available"]
    assert b.changes[0].text.split(": ")[1].startswith("fluoro-dsa 8")
    c = advise(procedure="caudal", us_experience="novice")
    assert any(x.text.startswith("With a competent US operator: us 8") for x in c.changes)
    assert "pf-operator-chen-2011" in c.changes[0].evidence


@pytest.mark.parametrize("kwargs, fragment", [
    ({"procedure": "lumbar-tf"}, "third-occipital, cervical-medial-branch"),
    ({"procedure": "caudal", "bmi": 500}, "--bmi: 500.0 kg/m² is outside the allowed range"),
    ({"procedure": "caudal", "age": -3}, "--age"),
    ({"procedure": "caudal", "egfr": 900}, "--egfr"),
    ({"procedure": "caudal", "contrast_allergy": "anaphylaxis"}, "'none', 'mild' or 'severe'"),
    ({"procedure": "caudal", "us_experience": "guru"}, "'novice', 'competent' or 'expert'"),
    ({"procedure": "lumbar-transforaminal", "level": "L5"}, "choose one of: L1-L2"),
    ({"procedure": "knee", "level": "L4-L5"}, "takes no level"),
    ({"procedure": "caudal", "bmi": "heavy"}, "--bmi"),
])
def test_bad_input_is_one_clear_user_error(kwargs, fragment):
    with pytest.raises(UserError) as e:
        AdviceRequest.build(**kwargs)
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg
