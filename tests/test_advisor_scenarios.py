# ruff: noqa: E501  (the scenario table below is wide on purpose)
"""The scenario table of issue 7. Each row names the EVIDENCE.md rows it rests on; the test
checks the ranking claim and that the advice actually cites those rows.

| scenario | expectation | EVIDENCE.md rows |
|---|---|---|
| pregnant + caudal | US first | caudal-chen-2004, caudal-efficiency, gl-acog-723, pf-pregnancy |
| cervical transforaminal | FL+DSA first; critical US warning | ctf-reviews, iv-us-blind-spot, iv-mclean-cervical, gl-rathmell-2015 |
| diagnostic SIJ block | FL first | sij-jee-rct, sij-cadaver, gl-sis-auc |
| knee | US first | knee-berkoff, knee-fang |
| lumbar MBB, BMI 35 | FL first, US demoted, warning | lmbb-ashmore-mbb, bmi-rauch-2009, bmi-no-cutoff |
| third occipital, expert US | US >= FL | ton-finlayson-success, ton-finlayson-safety, ton-finlayson-time |
| severe contrast allergy + lumbar TF | warning; gadolinium never suggested | gl-benzon-2021, gl-provenzano-2019, pf-contrast-allergy |
| no fluoroscope or CT, lumbar TF | US/landmark ranking with warnings | ltf-yang-rct, ltf-intravascular-after-us, iv-us-blind-spot, gl-rathmell-2015 |
| hip, BMI 38 | US first, no BMI penalty | hip-hoeber-meta, bmi-smith-hip |
| cervical MBB | US >= FL (vascular OR 0.09) | cmbb-meta-vascular, cmbb-meta-success, gl-hurley-2022-mbb |
| lumbar TF at L5-S1 | US 2 lower than at L4-L5 | ltf-gofeld-series |
| caudal, novice US operator | FL first | pf-operator-chen-2011, gl-rathmell-2015 |
| stellate at C7 | US first (path vessels) | sgb-path-anatomy, pf-level-choi |
| pregnant + SIJ + BMI 36 | FL still first, dose warning | sij-jee-rct, pf-pregnancy, gl-acr-spr-pregnancy |
| cervical TF without DSA | FL first, note that DSA would score higher | iv-mclean-cervical, gl-rathmell-2015 |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from needleguide.advisor import Advice, advise, load_evidence
from needleguide.advisor.cds import to_cds_hooks


@dataclass
class Scenario:
    name: str
    request: dict[str, Any]
    check: Callable[[Advice], None]
    evidence: tuple[str, ...]


def _first(m: str) -> Callable[[Advice], None]:
    def check(a: Advice) -> None:
        assert a.first.modality == m, [(r.modality, r.score) for r in a.ranking]
    return check


def _ctf(a: Advice) -> None:
    assert a.first.modality == "fluoro-dsa"
    crit = [w for w in a.warnings if w.severity == "critical"]
    assert crit and "cannot exclude intravascular injection" in crit[0].text
    assert a.score("us") <= 3


def _lmbb_bmi(a: Advice) -> None:
    assert a.first.modality == "fluoro" and a.score("us") < a.score("fluoro")
    assert any(w.severity == "warning" and "BMI 35" in w.text for w in a.warnings)


def _ton(a: Advice) -> None:
    assert a.score("us") >= a.score("fluoro") and a.position("us") < a.position("fluoro")


def _allergy(a: Advice) -> None:
    assert any(w.severity == "warning" and "Severe contrast allergy" in w.text
               for w in a.warnings)
    texts = [x.text for r in a.ranking for x in r.reasons] + [w.text for w in a.warnings]
    texts += [c.text for c in a.changes]
    for t in texts:
        if "gadolinium" in t.lower():
            assert "not a safe alternative" in t and "not substitute" in t.lower()
    for card in to_cds_hooks(a)["cards"]:
        for s in card.get("suggestions", []):
            assert "gadolinium" not in s["label"].lower()


def _no_fluoro(a: Advice) -> None:
    assert [r.modality for r in a.ranking[:2]] == ["us", "landmark"]
    assert a.score("fluoro") == a.score("fluoro-dsa") == 1
    sev = {w.severity for w in a.warnings}
    assert "warning" in sev
    assert any("Best available modality is us" in w.text for w in a.warnings)
    assert any("cannot show intravascular" in w.text and w.severity == "warning"
               for w in a.warnings)


def _hip(a: Advice) -> None:
    assert a.first.modality == "us" and a.score("us") == 8
    assert not any(x.text.startswith(("-", "+")) for x in a.first.reasons)


def _cmbb(a: Advice) -> None:
    assert a.score("us") >= a.score("fluoro") and a.first.modality == "us"


def _l5s1(a: Advice) -> None:
    assert a.score("us") == advise(procedure="lumbar-transforaminal").score("us") - 2


def _sij_preg(a: Advice) -> None:
    assert a.first.modality == "fluoro"
    assert any(w.severity == "warning" and "Pregnancy" in w.text for w in a.warnings)


def _ctf_nodsa(a: Advice) -> None:
    assert a.first.modality == "fluoro"
    assert any(w.severity == "info" and "fluoro-dsa would score 8" in w.text
               for w in a.warnings)


SCENARIOS = [
    Scenario("pregnant + caudal", {"procedure": "caudal", "pregnant": True}, _first("us"),
             ("caudal-chen-2004", "caudal-efficiency", "gl-acog-723", "pf-pregnancy")),
    Scenario("cervical transforaminal", {"procedure": "cervical-transforaminal"}, _ctf,
             ("ctf-reviews", "iv-us-blind-spot", "iv-mclean-cervical", "gl-rathmell-2015")),
    Scenario("diagnostic SIJ block", {"procedure": "sacroiliac"}, _first("fluoro"),
             ("sij-jee-rct", "sij-cadaver", "gl-sis-auc")),
    Scenario("knee", {"procedure": "knee"}, _first("us"), ("knee-berkoff", "knee-fang")),
    Scenario("lumbar MBB at BMI 35", {"procedure": "lumbar-medial-branch", "bmi": 35},
             _lmbb_bmi, ("lmbb-ashmore-mbb", "bmi-rauch-2009", "bmi-no-cutoff")),
    Scenario("third occipital, expert US",
             {"procedure": "third-occipital", "us_experience": "expert"}, _ton,
             ("ton-finlayson-success", "ton-finlayson-safety", "ton-finlayson-time")),
    Scenario("severe contrast allergy + lumbar TF",
             {"procedure": "lumbar-transforaminal", "contrast_allergy": "severe"}, _allergy,
             ("gl-benzon-2021", "gl-provenzano-2019", "pf-contrast-allergy")),
    Scenario("no fluoroscope or CT, lumbar TF",
             {"procedure": "lumbar-transforaminal", "has_fluoro": False, "has_ct": False},
             _no_fluoro, ("ltf-yang-rct", "ltf-intravascular-after-us", "iv-us-blind-spot",
                          "gl-rathmell-2015")),
    Scenario("hip at BMI 38", {"procedure": "hip", "bmi": 38}, _hip,
             ("hip-hoeber-meta", "bmi-smith-hip")),
    Scenario("cervical MBB", {"procedure": "cervical-medial-branch"}, _cmbb,
             ("cmbb-meta-vascular", "cmbb-meta-success", "gl-hurley-2022-mbb")),
    Scenario("lumbar TF at L5-S1", {"procedure": "lumbar-transforaminal", "level": "L5-S1"},
             _l5s1, ("ltf-gofeld-series",)),
    Scenario("caudal, novice US operator", {"procedure": "caudal", "us_experience": "novice"},
             _first("fluoro"), ("pf-operator-chen-2011", "gl-rathmell-2015")),
    Scenario("stellate at C7", {"procedure": "stellate-ganglion", "level": "C7"},
             _first("us"), ("sgb-path-anatomy", "pf-level-choi")),
    Scenario("pregnant + SIJ + BMI 36",
             {"procedure": "sacroiliac", "pregnant": True, "bmi": 36}, _sij_preg,
             ("sij-jee-rct", "pf-pregnancy", "gl-acr-spr-pregnancy")),
    Scenario("cervical TF without DSA", {"procedure": "cervical-transforaminal",
                                         "has_dsa": False}, _ctf_nodsa,
             ("iv-mclean-cervical", "gl-rathmell-2015")),
]


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(sc: Scenario):
    assert not load_evidence().missing(sc.evidence)
    a = advise(**sc.request)
    sc.check(a)
    assert set(sc.evidence) <= a.cited(), set(sc.evidence) - a.cited()


def test_docstring_table_matches_scenarios():
    rows = [ln for ln in __doc__.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(rows) == len(SCENARIOS)
    for line, sc in zip(rows, SCENARIOS, strict=True):
        cited = {x.strip() for x in line.split("|")[3].split(",")}
        assert cited == set(sc.evidence), sc.name
