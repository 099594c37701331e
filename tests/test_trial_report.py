"""Trial report (issue #18): confidence intervals, the report files, and the reproduction of
the clinical figures of EVIDENCE.md on synthetic rows built so the answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from needleguide.lab import reproduction as rp
from needleguide.lab import trial_stats as st
from needleguide.lab.trial_report import build_report, write_trial_report


def row(procedure: str, modality: str, i: int, *, success: bool = True, bmi: float = 25.0,
        time_s: float = 300.0, passes: int = 1, tip: float = 1.0, ev: int = 0, miss: int = 0,
        status: str = "ok", cause: str | None = None) -> dict:
    fl = modality != "us"
    return {
        "task_key": f"{procedure}/{modality}/{i}", "trial_seed": 1, "procedure": procedure,
        "modality": modality, "index": i, "patient_seed": 1000 + i, "bmi": bmi,
        "degeneration": 0, "age": 50.0, "pregnant": False, "status": status,
        "error": "RuntimeError: boom" if status == "failed" else None,
        "success": None if status == "failed" else success,
        "final_tip_error_mm": None if status == "failed" else tip, "tolerance_mm": 3.0,
        "passes": passes, "procedure_time_s": time_s, "fluoro_time_s": 20.0 if fl else 0.0,
        "dap_gy_cm2": 0.1 if fl else 0.0, "reference_air_kerma_mgy": 5.0 if fl else 0.0,
        "contrast_ml": 1.0 if fl else 0.0, "intravascular_events": ev,
        "intravascular_missed": miss,
        "failure_cause": None if success else (cause or "off_target"),
        "target_depth_mm": 50.0, "detection_rate": 0.9, "elapsed_s": 1.0, "worker": "w1"}


def arm(procedure: str, modality: str, n: int, n_success: int, **kw) -> list[dict]:
    return [row(procedure, modality, i, success=i < n_success, **kw) for i in range(n)]


def by_id(table: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in table}


# ------------------------------------------------------------------ confidence intervals
@pytest.mark.parametrize("k,n,lo,hi", [(8, 10, 0.490, 0.943), (0, 10, 0.0, 0.278),
                                       (10, 10, 0.722, 1.0), (1, 1, 0.207, 1.0)])
def test_wilson_known_values(k, n, lo, hi):
    ci = st.wilson(k, n)
    assert ci is not None
    assert ci[0] == pytest.approx(lo, abs=5e-4) and ci[1] == pytest.approx(hi, abs=5e-4)


def test_wilson_edges():
    assert st.wilson(0, 0) is None
    assert st.wilson(0, 10)[0] == 0.0 and st.wilson(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        st.wilson(11, 10)


def test_newcombe_difference_known_value():
    # Newcombe (1998), method 10: 56/70 vs 48/80 -> +0.0524 to +0.3339
    lo, hi = st.newcombe_diff(56, 70, 48, 80)
    assert lo == pytest.approx(0.0524, abs=5e-4) and hi == pytest.approx(0.3339, abs=5e-4)


def test_bootstrap_reproducible_and_covers_median():
    x = np.random.default_rng(3).gamma(2.0, 2.0, size=60)
    a = st.bootstrap_ci(x, st.median_stat, seed=7)
    b = st.bootstrap_ci(x, st.median_stat, seed=7)
    assert a == b
    # another seed draws other resamples (the mean: a continuous statistic)
    assert st.bootstrap_ci(x, st.mean_stat, seed=7) != st.bootstrap_ci(x, st.mean_stat, seed=8)
    assert a[0] <= float(np.median(x)) <= a[1]
    assert st.bootstrap_ci([], st.median_stat) is None


def test_bootstrap_ratio_of_pooled_shares():
    fl = [(1, 1)] * 7 + [(0, 1)] * 3 + [(0, 0)] * 20  # 7 of 10 events caught
    dsa = [(1, 1)] * 10 + [(0, 0)] * 20
    ci = st.bootstrap_two(fl, dsa, st.pooled_share, lambda a, b: a / b)
    assert ci[0] < 0.7 < ci[1] and ci[1] <= 1.0


# ------------------------------------------------------------------ the mapping table
def test_mapping_table_is_valid_and_cites_evidence():
    figs = rp.load_figures()
    assert len(figs) >= 6
    from needleguide.advisor.evidence import load_evidence
    from needleguide.procedures import load_catalogue

    ev = load_evidence()
    procs = {p.id for p in load_catalogue().procedures}
    for f in figs:
        assert f.keys and not ev.missing(f.keys), f.id
        for a in (f.a, f.b):
            if a is None:
                continue
            assert set(a.modalities) <= {"us", "fluoro", "fluoro-dsa"}, f.id
            assert a.procedures is None or set(a.procedures) <= procs, f.id
    ids = {f.id for f in figs}
    assert {"sij-us-vs-fl", "caudal-us", "lmbb-us-obese", "live-fl-vs-dsa",
            "ton-time"} <= ids


def test_mapping_table_refuses_bad_entries():
    good = {"id": "x", "keys": ["sij-jee-rct"], "clinical": "c", "measure": "success",
            "a": {"modalities": ["us"]}, "b": {"modalities": ["fluoro"]}, "expect": "lower"}
    rp.parse_figures({"figures": [good]})
    with pytest.raises(ValueError, match="measure"):
        rp.parse_figures({"figures": [dict(good, measure="happiness")]})
    with pytest.raises(ValueError, match="arm b"):
        rp.parse_figures({"figures": [dict(good, expect=None)]})
    with pytest.raises(ValueError, match="modalities"):
        rp.parse_figures({"figures": [dict(good, a={"procedures": ["hip"]})]})
    with pytest.raises(ValueError, match="duplicate"):
        rp.parse_figures({"figures": [good, good]})


def test_yaml_values_match_evidence_text():
    """The clinical numbers in the mapping are the EVIDENCE.md numbers."""
    shared = Path(__file__).resolve().parents[1] / "src/needleguide/lab/reproduction.yaml"
    data = yaml.safe_load(shared.read_text())
    f = {x["id"]: x for x in data["figures"]}
    assert f["sij-us-vs-fl"]["clinical_value"] == pytest.approx(0.873 - 0.982, abs=1e-3)
    assert f["ton-time"]["clinical_value"] == pytest.approx(212.8 / 396.5, abs=1e-3)
    assert f["lumbar-tf-time"]["clinical_value"] == pytest.approx(518 / 929, abs=1e-3)
    assert f["live-fl-vs-dsa"]["clinical_value"] == 0.71
    assert f["lmbb-us-obese"]["clinical_value"] == 0.62


# ------------------------------------------------------------------ reproduction on rows
def synthetic() -> list[dict]:
    rows = []
    rows += arm("sacroiliac", "us", 60, 45)        # 75% under US
    rows += arm("sacroiliac", "fluoro", 60, 60)    # 100% under FL: direction reproduced
    rows += arm("third-occipital", "us", 30, 30, time_s=500.0)  # US slower: not reproduced
    rows += arm("third-occipital", "fluoro", 30, 30, time_s=300.0)
    rows += arm("caudal", "us", 40, 40)           # no caudal FL at all
    return rows


def test_reproduction_direction_yes_no_and_missing_modality():
    t = by_id(rp.reproduction_table(synthetic()))
    sij = t["sij-us-vs-fl"]
    assert sij["direction_reproduced"] == "yes"
    assert sij["arms"][0]["value"] == pytest.approx(0.75)
    assert sij["effect"]["value"] == pytest.approx(-0.25)
    assert sij["size_reproduced"] == "no" and "outside" in sij["why"]  # -0.109 not in CI
    ton = t["ton-time"]
    assert ton["direction_reproduced"] == "no"
    assert ton["effect"]["value"] == pytest.approx(500 / 300, abs=1e-4)
    assert "higher" in ton["why"] and "not modelled" in ton["why"]
    assert t["ton-success"]["direction_reproduced"] == "yes"  # equal arms, as the RCT
    cf = t["caudal-first-pass"]
    assert cf["direction_reproduced"] == "not enough data"
    assert "no fluoro procedures" in cf["why"]
    assert t["caudal-time"]["direction_reproduced"] == "not enough data"
    cu = t["caudal-us"]  # single arm: 40/40, clinical 100%
    assert cu["direction_reproduced"] == "n/a" and cu["size_reproduced"] == "yes"
    assert t["hip-us-bmi"]["direction_reproduced"] == "not enough data"
    for r in t.values():
        assert r["evidence_keys"] and all(r["sources"])
        json.dumps(r)


def test_reproduction_small_arm_and_inconclusive():
    rows = arm("sacroiliac", "us", 5, 4) + arm("sacroiliac", "fluoro", 60, 60)
    r = by_id(rp.reproduction_table(rows))["sij-us-vs-fl"]
    assert r["direction_reproduced"] == "not enough data" and "fewer than 10" in r["why"]
    rows = arm("sacroiliac", "us", 20, 19) + arm("sacroiliac", "fluoro", 20, 20)
    r = by_id(rp.reproduction_table(rows))["sij-us-vs-fl"]
    assert r["direction_reproduced"] == "inconclusive"
    assert r["size_reproduced"] == "yes"  # -0.109 inside a wide CI


def test_reproduction_bmi_filter_and_events():
    rows = (arm("lumbar-medial-branch", "us", 50, 31, bmi=35.0)   # 62% at BMI > 30
            + arm("lumbar-medial-branch", "us", 50, 48, bmi=24.0))
    r = by_id(rp.reproduction_table(rows))["lmbb-us-obese"]
    assert r["arms"][0]["n"] == 50 and r["arms"][0]["value"] == pytest.approx(0.62)
    assert r["direction_reproduced"] == "yes" and r["size_reproduced"] == "yes"
    # live FL notices 7 of 10 intravascular events, DSA 10 of 10
    fl = [row("lumbar-transforaminal", "fluoro", i, ev=1, miss=int(i >= 7)) for i in range(10)]
    dsa = [row("lumbar-transforaminal", "fluoro-dsa", i, ev=1) for i in range(10)]
    us = [row("lumbar-transforaminal", "us", i, ev=1, miss=1, success=False) for i in range(8)]
    t = by_id(rp.reproduction_table(fl + dsa + us))
    live = t["live-fl-vs-dsa"]
    assert live["effect"]["value"] == pytest.approx(0.7)
    assert live["size_reproduced"] == "yes"
    assert live["direction_reproduced"] in ("yes", "inconclusive")
    miss = t["us-misses-intravascular"]
    assert miss["arms"][0]["value"] == 1.0 and miss["direction_reproduced"] == "yes"
    assert miss["size_reproduced"] == "yes"


def test_failed_tasks_excluded():
    base = synthetic()
    broken = [row("sacroiliac", "us", 100 + i, status="failed") for i in range(30)]
    a = rp.reproduction_table(base)
    b = rp.reproduction_table(base + broken)
    assert a == b
    rep = build_report(base + broken, "t")
    assert rep["procedures"] == len(base) and rep["failed_tasks_count"] == 30
    g = {(x["procedure"], x["modality"]): x for x in rep["groups"]}
    assert g[("sacroiliac", "us")]["procedures"] == 60
    assert g[("sacroiliac", "us")]["failed_tasks"] == 30
    assert g[("sacroiliac", "us")]["success"]["k"] == 45
    assert len(rep["failed_tasks"]) == 30 and rep["failed_tasks"][0]["error"]


# ------------------------------------------------------------------ the report files
def test_report_files(tmp_path):
    rows = synthetic()
    rows += [row("sacroiliac", "us", 200 + i, success=False, bmi=40.0, tip=9.0,
                 cause="needle_not_seen") for i in range(5)]
    rows += [row("caudal", "us", 300, status="failed")]
    rep = write_trial_report(pa.Table.from_pylist(rows), tmp_path, "Synthetic trial")
    j = json.loads((tmp_path / "trial.json").read_text())
    assert j == json.loads(json.dumps(rep))
    for k in ("title", "methods", "groups", "success_by_bmi", "failure_causes",
              "failed_tasks", "reproduction", "plots"):
        assert k in j, k
    assert j["methods"]["bootstrap_B"] == st.BOOT_B
    g = {(x["procedure"], x["modality"]): x for x in j["groups"]}
    sij = g[("sacroiliac", "us")]
    assert sij["procedures"] == 65 and sij["success"]["k"] == 45
    assert sij["success"]["ci95"][0] < 45 / 65 < sij["success"]["ci95"][1]
    assert sij["tip_error_mm"]["median"] == 1.0 and len(sij["tip_error_mm"]["iqr"]) == 2
    assert sij["fluoro_time_s"] is None and g[("sacroiliac", "fluoro")]["fluoro_time_s"]
    causes = {(c["procedure"], c["modality"]): c for c in j["failure_causes"]}
    sc = {x["cause"]: x for x in causes[("sacroiliac", "us")]["causes"]}
    assert sc["off_target"]["count"] == 15 and sc["needle_not_seen"]["count"] == 5
    assert sc["off_target"]["share"] == pytest.approx(0.75)
    assert [f["task_key"] for f in j["failed_tasks"]] == ["caudal/us/300"]
    h = (tmp_path / "trial.html").read_text()
    assert h.count("data:image/png;base64,") == 2
    assert "<td>sacroiliac</td><td>us</td>" in h and "sij-us-vs-fl" in h
    assert "caudal/us/300" in h and "needle not seen" in h
    assert "Jee, Arch PMR 2014" in h
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_report_with_only_failed_tasks(tmp_path):
    rep = write_trial_report([row("hip", "us", 0, status="failed")], tmp_path, "empty")
    assert rep["procedures"] == 0 and rep["plots"] == []
    assert "No procedures to plot" in (tmp_path / "trial.html").read_text()
    assert all(r["direction_reproduced"] in ("not enough data", "n/a")
               for r in rep["reproduction"])
