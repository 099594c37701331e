"""Simulated procedure sessions (issue 8): outcome within tolerance, determinism, the
fixed ``simulate --json`` interface, the forced intravascular tip."""

from __future__ import annotations

import json

import pytest

from needleguide.errors import UserError
from needleguide.session import SessionConfig, run_session

KEYS = {"procedure", "modality", "seed", "final_tip_error_mm", "tolerance_mm", "success",
        "passes", "procedure_time_s", "fluoro_time_s", "dap_gy_cm2",
        "reference_air_kerma_mgy", "contrast_ml", "events"}


@pytest.fixture(scope="module")
def fl_session():
    cfg = SessionConfig.build(procedure="lumbar-transforaminal", level="L4-L5", side="right",
                              modality="fluoro", bmi=28, seed=1, record_video=False)
    return run_session(cfg)


def test_fluoro_transforaminal_within_tolerance(fl_session):
    m = fl_session.metrics
    assert m["final_tip_error_mm"] <= m["tolerance_mm"] == 3.0
    assert m["passes"] >= 1
    assert m["fluoro_time_s"] > 0 and m["dap_gy_cm2"] > 0 and m["contrast_ml"] == 1.0
    # the operator acted on the analyser: some steps had the needle found
    assert any(s.detected for s in fl_session.steps)
    assert fl_session.extra["confirm"]["test_1"]["true_compartment"] != "none"


def test_interface_keys(fl_session):
    j = fl_session.interface_json()
    assert KEYS <= set(j) and set(j) - KEYS <= {"analyser", "detection_rate"}
    assert all(set(e) == {"t_s", "kind", "detected"} for e in j["events"])
    json.dumps(j)


def test_same_seed_same_metrics(fl_session):
    cfg = SessionConfig.build(procedure="lumbar-transforaminal", level="L4-L5", side="right",
                              modality="fluoro", bmi=28, seed=1, record_video=False)
    again = run_session(cfg)
    assert again.interface_json() == fl_session.interface_json()


def test_bad_input_is_one_user_error():
    with pytest.raises(UserError, match="modality"):
        SessionConfig.build(modality="xray")
    with pytest.raises(UserError, match="bmi"):
        SessionConfig.build(bmi=5)


def test_us_medial_branch_within_tolerance():
    cfg = SessionConfig.build(procedure="lumbar-medial-branch", level="L5", side="right",
                              modality="us", bmi=28, seed=1, record_video=False)
    r = run_session(cfg)
    m = r.metrics
    assert m["final_tip_error_mm"] <= m["tolerance_mm"]
    assert m["fluoro_time_s"] == 0.0 and m["dap_gy_cm2"] == 0.0 and m["contrast_ml"] == 0.0


@pytest.mark.parametrize("modality", ["fluoro", "us"])
def test_sij_within_tolerance_each_modality(modality):
    """Right SIJ, standard phantom (BMI 28), seed 1: FL down the joint line, US in-plane
    medial to lateral into the cleft; the operator steered on the analyser's outputs."""
    cfg = SessionConfig.build(procedure="sacroiliac", side="right", modality=modality,
                              bmi=28, seed=1, record_video=False)
    r = run_session(cfg)
    m = r.metrics
    assert m["final_tip_error_mm"] <= m["tolerance_mm"] == 3.0, m
    assert m["analyser"] and all(c["frames"] >= c["found"] for c in m["analyser"].values())
    if modality == "fluoro":
        assert any(s.detected for s in r.steps)  # steered on the analyser, not blind
        assert r.extra["confirm"]["test_1"]["label"] == "intra_articular"
        assert r.plan["blocked_mm"] == 0.0
    else:  # 1 mL inside the joint: the echo change at the tip is seen (pixels only)
        assert r.extra["confirm"]["test_1"]["visible"] is True
        assert r.plan["blocked_mm"] == 0.0  # a way into the cleft without the ilium


@pytest.mark.parametrize("modality,detected", [("fluoro", True), ("us", False)])
def test_forced_intravascular_tip(modality, detected):
    cfg = SessionConfig.build(procedure="lumbar-transforaminal", level="L4-L5", side="right",
                              modality=modality, seed=1, force_tip="intravascular",
                              record_video=False)
    r = run_session(cfg)
    iv = [e for e in r.events if e.kind == "intravascular_injection"]
    assert iv, [e.kind for e in r.events]
    assert iv[0].detected is detected
    assert r.metrics["success"] is False
    if modality == "fluoro":  # the alarm came from the contrast classifier on the pixels
        assert r.extra["confirm"]["test_1"]["alarm_time_s"] is not None
    else:  # intravascular injectate leaves no spread on B-mode
        assert r.extra["confirm"]["test_1"]["visible"] is False


def test_high_bmi_medial_branch_under_us_is_harder():
    """From physics, not a rule: at BMI 40 the path is longer (the bevel curvature has
    longer to act) and the needle is fainter on B-mode (the analyser finds it less), so
    over the same seeds the sessions fail or need passes more often than at BMI 22."""
    def run(bmi):
        out = []
        for seed in (1, 2, 3, 4, 5, 6):
            cfg = SessionConfig.build(procedure="lumbar-medial-branch", level="L5",
                                      side="right", modality="us", bmi=bmi, seed=seed,
                                      record_video=False)
            out.append(run_session(cfg))
        cost = sum((not r.metrics["success"]) + r.metrics["passes"] - 1 for r in out)
        found = sum(r.metrics["detection_rate"] for r in out) / len(out)
        path = sum(r.plan["path_mm"] for r in out) / len(out)
        return cost, found, path

    cost_lo, found_lo, path_lo = run(22.0)
    cost_hi, found_hi, path_hi = run(40.0)
    assert path_hi > path_lo + 15.0
    assert found_hi < found_lo
    assert cost_hi > cost_lo


@pytest.mark.parametrize("modality", ["us", "fluoro"])
def test_midline_procedure_runs_without_a_side(modality):
    """Caudal takes no side: the session must not pass its operator's default side to the
    target or view lookup (it did, and every caudal session failed)."""
    r = run_session(SessionConfig.build(procedure="caudal", modality=modality, seed=2,
                                        record_video=False))
    assert r.plan["target"] and r.metrics["passes"] >= 1
    assert r.metrics["final_tip_error_mm"] >= 0


def test_level_positions_and_shifts():
    from needleguide.session.level_check import level_u, shifted

    assert level_u("L5-S1") == 0.0 and level_u("L4-L5") == 1.0 and level_u("L5") == 0.5
    assert level_u("L4") == 1.5 and level_u("C6") is None and level_u("S1") is None
    assert shifted("L4-L5", 1) == "L3-L4" and shifted("L4-L5", -1) == "L5-S1"
    assert shifted("L3", 1) == "L2" and shifted("L5", -1) is None
    assert shifted("L1-L2", 1) is None  # T12-L1 is beyond the lumbar targets


def test_us_session_counts_levels_and_works_where_it_counted(monkeypatch):
    """Under US the operator finds the level by counting up from the sacrum (the US level
    analyser on a sweep of this patient): counted right, the session is as before; counted
    one level high, the needle goes to the level above and the session fails on it."""
    import needleguide.session.level_check as LC
    from needleguide.lab.trial_task import failure_cause

    cfg = dict(procedure="lumbar-medial-branch", modality="us", bmi=24.0, seed=1,
               record_video=False)
    r = run_session(SessionConfig.build(**cfg))
    lc = r.plan["level_check"]
    assert r.plan["level_reached"] == r.plan["level_intended"] == "L5"
    assert lc["result"] == "right level" and abs(lc["u_true"] - 0.5) < 0.5
    assert lc["frames"] >= 10

    def one_high(patient, level, side, seed):
        return LC.shifted(level, 1), {"result": "wrong level (forced by the test)"}

    monkeypatch.setattr(LC, "identify_level_us", one_high)
    w = run_session(SessionConfig.build(**cfg))
    assert w.plan["level_reached"] == "L4" and w.plan["aim"] != w.plan["target"]
    assert any(e.kind == "wrong_level" for e in w.events)
    assert not w.metrics["success"] and w.metrics["final_tip_error_mm"] > 15.0
    assert failure_cause(w.metrics, w.events, w.plan, "us", {}) == "wrong_level"
    off = run_session(SessionConfig.build(**cfg, count_levels=False))
    assert off.plan["level_check"] is None and off.plan["level_reached"] == "L5"
