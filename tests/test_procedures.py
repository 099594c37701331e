"""Procedure catalogue: completeness, phantom naming, evidence links, validation, CLI."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest
import yaml

from needleguide.advisor import load_evidence
from needleguide.anatomy.tissues import default_tissue_table
from needleguide.errors import UserError
from needleguide.procedures import (
    FL_VIEWS,
    PROCEDURE_IDS,
    US_VIEWS,
    get_procedure,
    load_catalogue,
    parse_catalogue,
)

# The procedures the session engine runs on the phantom, with their default targets.
SESSION_TARGETS = {
    "lumbar-transforaminal": ["L4-L5.foramen.right"],
    "sacroiliac": ["sij.right.inferior"],
    "lumbar-medial-branch": ["L5.medial_branch.right"],
    "caudal": ["sacral_hiatus"],
    "cervical-transforaminal": ["C5-C6.foramen.right"],
    "stellate-ganglion": ["C6.stellate.right", "C6.anterior_tubercle.right"],
    "third-occipital": ["third_occipital_nerve.right", "C2-C3.facet.right"],
}
PERIPHERAL = ("knee", "shoulder", "genicular", "carpal-tunnel", "lfcn")


def _raw() -> dict:
    text = resources.files("needleguide.procedures").joinpath("catalogue.yaml").read_text()
    return yaml.safe_load(text)


def test_catalogue_has_exactly_the_interface_ids_in_order():
    cat = load_catalogue()
    assert [p.id for p in cat] == list(PROCEDURE_IDS)
    assert len(PROCEDURE_IDS) == 18


@pytest.mark.parametrize("pid", list(SESSION_TARGETS))
def test_session_procedures_are_complete(pid):
    p = get_procedure(pid)
    assert p.target_names() == SESSION_TARGETS[pid]
    assert p.phantom_region in ("lumbar", "cervical")
    assert p.us.view in US_VIEWS
    assert p.us.survey_view is None or p.us.survey_view in US_VIEWS
    assert p.fluoro_view_names() and all(v in FL_VIEWS for v in p.fluoro_view_names())
    assert p.avoid, "phantom procedures name the tissues to avoid"
    assert p.tolerance_mm > 0 and p.tolerance_basis == "assumption"
    assert p.contrast_ml is not None and p.contrast_ml.evidence == ("gl-benzon-2021",)
    assert (p.contrast_ml.min_ml, p.contrast_ml.max_ml) == (1.5, 3.0)  # Benzon 2021


def test_levels_and_sides_resolve_and_bad_ones_are_user_errors():
    tf = get_procedure("lumbar-transforaminal")
    assert tf.target_names(level="L5-S1", side="left") == ["L5-S1.foramen.left"]
    assert tf.fluoro_view_names(side="left") == ["ap", "oblique-left", "lateral"]
    with pytest.raises(UserError, match="L1-L2, L2-L3, L3-L4, L4-L5, L5-S1"):
        tf.target_names(level="L9-L5")
    with pytest.raises(UserError, match="takes no level"):
        get_procedure("caudal").target_names(level="L4")
    with pytest.raises(UserError, match="midline"):
        get_procedure("lumbar-interlaminar").target_names(side="left")
    assert get_procedure("cervical-transforaminal").target_names(level="C6-C7") == [
        "C6-C7.foramen.right"]


def test_peripheral_procedures_have_no_phantom_landmarks():
    for pid in PERIPHERAL:
        p = get_procedure(pid)
        assert p.phantom_region is None and p.targets == () and p.region == "peripheral"
        assert p.target_description
    assert get_procedure("thoracic-facet").phantom_region is None


def test_avoid_names_are_tissues_and_evidence_rows_exist():
    tissues = {t.name for t in default_tissue_table()}
    ev = load_evidence()
    for p in load_catalogue():
        assert set(p.avoid) <= tissues, p.id
        assert p.evidence and not ev.missing(p.evidence), p.id
        # the procedure's own evidence rows name it (links point the right way)
        own = [r for r in p.evidence if p.id in ev[r].procedures]
        assert own, f"{p.id} cites no row about itself"
        assert p.injectate_ml.basis == "assumption"  # EVIDENCE.md gives no injectate volumes


def test_unknown_procedure_lists_every_id():
    with pytest.raises(UserError) as e:
        get_procedure("lumbar-tf")
    for pid in PROCEDURE_IDS:
        assert pid in str(e.value)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["procedures"].pop(), "missing"),
    (lambda d: d["procedures"][0]["avoid"].append("kidneys"), "unknown tissues"),
    (lambda d: d["procedures"][0]["us"].update(view="c9-oblique"), "US view"),
    (lambda d: d["procedures"][5]["fluoro_views"].append("weird"), "FL view"),
    (lambda d: d["procedures"][5].update(default_level="L7-L8"), "default_level"),
    (lambda d: d["procedures"][13].update(targets=["knee.right.recess"]), "peripheral"),
    (lambda d: d["procedures"][0]["injectate_ml"].update(min_ml=5, max_ml=1), "max_ml"),
    (lambda d: d["procedures"][0].update(tolerance_mm=-1), "tolerance_mm"),
])
def test_catalogue_validation_rejects_bad_entries(mutate, message):
    data = copy.deepcopy(_raw())
    mutate(data)
    with pytest.raises(ValueError, match=message):
        parse_catalogue(data)


def test_procedures_cli_json_and_table(capsys):
    from needleguide.cli import main

    assert main(["procedures", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in data] == list(PROCEDURE_IDS)
    assert data[5]["target_names"] == ["L4-L5.foramen.right"]
    assert main(["procedures", "caudal", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["id"] == "caudal" and one["us"]["view"] == "caudal-longitudinal"
    assert main(["procedures"]) == 0
    out = capsys.readouterr().out
    assert "lumbar-transforaminal" in out and "sacral_hiatus" in out
    assert main(["procedures", "elbow"]) == 2
    assert "carpal-tunnel" in capsys.readouterr().err


def _phantom_landmarks(region: str) -> set[str]:
    try:
        from needleguide.anatomy.phantom import build_model

        return set(build_model(region).landmarks)
    except ImportError:  # region builder not in this checkout yet
        pytest.skip(f"{region} phantom builder not available")


@pytest.mark.parametrize("region", ["lumbar", "cervical"])
def test_phantom_targets_exist_at_every_simulated_level_and_side(region):
    names = _phantom_landmarks(region)
    checked = 0
    for p in load_catalogue():
        if p.phantom_region != region:
            continue
        for lv in p.simulated_levels() or (None,):
            for side in ("left", "right") if p.default_side else (None,):
                for t in p.target_names(level=lv, side=side):
                    assert t in names, (p.id, t)
                    checked += 1
    assert checked >= (40 if region == "lumbar" else 20)
    assert get_procedure("stellate-ganglion").simulated_levels() == ("C6",)


def test_us_views_match_the_ultrasound_imager():
    """The catalogue's view names, regions and probes are the ones the US imager knows."""
    views = pytest.importorskip("needleguide.us.views")
    assert set(US_VIEWS) == set(views.VIEWS)
    for p in load_catalogue():
        if p.phantom_region is None:
            continue
        for v in (p.us.view, p.us.survey_view):
            if v is None:
                continue
            region, probe = views.VIEW_INFO[v][:2]
            assert region == p.phantom_region, (p.id, v)
            assert probe == p.us.probe, (p.id, v)


def test_fl_views_are_known_to_the_c_arm():
    carm = pytest.importorskip("needleguide.fluoro.carm")
    assert set(FL_VIEWS) <= set(carm.VIEWS)
    for p in load_catalogue():
        for side in ("left", "right") if p.default_side else (None,):
            assert set(p.fluoro_view_names(side=side)) <= set(carm.VIEWS), p.id
