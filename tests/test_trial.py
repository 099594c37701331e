"""Virtual trials (issue 18): the population grammar, paired patients, the Dask runner
(real CLI, Parquet rows, resume after an interruption, failed tasks recorded, an external
scheduler and worker)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from needleguide.cli import main
from needleguide.errors import UserError
from needleguide.lab import trial_store as store
from needleguide.lab.population import DEFAULT_SPEC, parse_population
from needleguide.lab.trial import TrialSpec, run_trial
from needleguide.lab.trial_task import session_config
from needleguide.session.models import Event

SPEC = ("bmi=normal(29,6)[18,50];degeneration=choice(0,1,2,3;0.4,0.3,0.2,0.1);"
        "age=uniform(30,80);pregnant=bernoulli(0.0)")
FAST = ["--procedure", "sacroiliac", "--modalities", "us"]  # ~5 s per session (warm)
ENV = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# -- population grammar ------------------------------------------------------------------
def test_population_inline_and_yaml_agree(tmp_path):
    p = parse_population(SPEC)
    y = tmp_path / "pop.yaml"
    y.write_text("bmi: normal(29, 6)[18, 50]\ndegeneration: choice(0,1,2,3; 0.4,0.3,0.2,0.1)\n"
                 "age: uniform(30, 80)\npregnant: false\n")
    assert parse_population(y).text() == p.text().replace("bernoulli(0)", "0")
    assert parse_population(p.text()).text() == p.text()  # canonical text round-trips
    d = parse_population("")  # every field defaults
    assert d.text() == "bmi=28;degeneration=0;age=55;pregnant=0"
    assert parse_population(DEFAULT_SPEC).bmi.kind == "normal"


def test_population_draws_respect_bounds_and_weights():
    p = parse_population("bmi=normal(29,6)[18,50];degeneration=choice(0,3;0.25,0.75);"
                         "age=uniform(30,80);pregnant=bernoulli(0.5)")
    pats = [p.patient(7, "sacroiliac", i) for i in range(800)]
    assert all(18 <= x.bmi <= 50 and 30 <= x.age <= 80 for x in pats)
    assert {x.degeneration for x in pats} == {0, 3}
    assert 0.68 < sum(x.degeneration == 3 for x in pats) / 800 < 0.82
    assert 0.43 < sum(x.pregnant for x in pats) / 800 < 0.57
    assert p.patient(7, "sacroiliac", 3) == pats[3]  # reproducible
    assert p.patient(8, "sacroiliac", 3) != pats[3]


@pytest.mark.parametrize("spec, words", [
    ("bmi=normal(29,6)[10,50]", ["bmi", "[15, 60] kg/m²"]),
    ("bmi=normal(29,0)", ["bmi", "sd must be > 0"]),
    ("bmi=normal(100,1)", ["bmi", "almost no probability"]),
    ("age=200", ["age", "[0, 120] years"]),
    ("age=uniform(80,30)", ["age", "LO < HI"]),
    ("degeneration=choice(0,1,5)", ["degeneration", "5", "[0, 3]"]),
    ("degeneration=uniform(0,3)", ["degeneration", "integers"]),
    ("degeneration=choice(0,1;0.5,0.6)", ["degeneration", "sum to 1"]),
    ("degeneration=choice(0,1,2;0.5,0.5)", ["degeneration", "3 values but 2"]),
    ("pregnant=bernoulli(1.5)", ["pregnant", "[0, 1]"]),
    ("bmi=bernoulli(0.5)", ["bmi", "pregnant only"]),
    ("bmi=gauss(1,2)", ["bmi", "not a distribution"]),
    ("bmi=normal(a,2)", ["bmi", "not a number"]),
    ("weight=70", ["unknown field 'weight'", "bmi, degeneration, age, pregnant"]),
    ("bmi", ["FIELD=DIST"]),
    ("missing.yaml", ["no such file"]),
])
def test_population_bad_specs_name_the_field(spec, words):
    with pytest.raises(UserError) as e:
        parse_population(spec)
    msg = str(e.value)
    assert msg.startswith("--population:") and "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_population_bad_yaml(tmp_path):
    y = tmp_path / "p.yaml"
    y.write_text("- just a list\n")
    with pytest.raises(UserError, match="expected a mapping"):
        parse_population(y)


# -- trial spec: paired patients ------------------------------------------------------------
def test_same_patients_under_every_modality():
    spec = TrialSpec.build(["sacroiliac", "lumbar-transforaminal"],
                           "us,fluoro,fluoro-dsa", 4, SPEC, 5)
    tasks = spec.tasks()
    assert len(tasks) == spec.total == 24
    fields = ("patient_seed", "bmi", "degeneration", "age", "pregnant")
    by = {}
    for t in tasks:
        by.setdefault((t["procedure"], t["index"]), []).append(t)
    for group in by.values():
        assert [t["modality"] for t in group] == ["us", "fluoro", "fluoro-dsa"]
        assert len({tuple(t[f] for f in fields) for t in group}) == 1
        cfgs = [session_config(t) for t in group]
        assert len({c.seed for c in cfgs}) == 1 and [c.dsa for c in cfgs] == \
            [False, False, True]
    seeds = {t["patient_seed"] for t in tasks}
    assert len(seeds) == 8  # 2 procedures × 4 patients, all different
    again = TrialSpec.build(["sacroiliac"], "fluoro", 4, SPEC, 5).tasks()
    assert [t["patient_seed"] for t in again] == \
        [t["patient_seed"] for t in tasks if t["procedure"] == "sacroiliac"
         and t["modality"] == "fluoro"]


@pytest.mark.parametrize("args, words", [
    ((["sacroiliac"], "us,ct", 2), "--modalities: unknown value 'ct'"),
    ((["sacroiliac"], "", 2), "--modalities: none given"),
    ((["sacroiliac"], "us", 0), "--n: 0 is outside"),
    ((["nope"], "us", 2), "--procedure: unknown value 'nope'"),
    ((["sacroiliac", "sacroiliac"], "us", 2), "given twice"),
])
def test_bad_trial_arguments(args, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(")):
        TrialSpec.build(*args, SPEC, 1)


# -- fake sessions in a threaded LocalCluster (cheap): failures, resume by counting calls --
def _fake_session(calls: list, fail_seed: int | None):
    def run_session(cfg, progress=None):
        calls.append(cfg.seed)
        if cfg.seed == fail_seed:
            raise RuntimeError("boom")
        m = {"success": False, "final_tip_error_mm": 1.0, "tolerance_mm": 3.0, "passes": 1,
             "procedure_time_s": 100.0, "fluoro_time_s": 0.0, "dap_gy_cm2": 0.0,
             "reference_air_kerma_mgy": 0.0, "contrast_ml": 0.0, "detection_rate": 0.5}
        ev = [Event(90.0, "intravascular_injection", False, "not seen")]
        return SimpleNamespace(metrics=m, events=ev, plan={"path_mm": 42.0, "views": {}})
    return run_session


def test_failing_task_is_recorded_not_fatal(tmp_path, monkeypatch):
    import needleguide.session

    spec = TrialSpec.build(["sacroiliac"], "us", 3, SPEC, 1)
    bad = spec.tasks()[1]["patient_seed"]
    calls: list = []
    monkeypatch.setattr(needleguide.session, "run_session", _fake_session(calls, bad))
    res = run_trial(spec, tmp_path / "t", workers=1, processes=False)
    assert (res.ran, res.failed) == (3, 1) and len(calls) == 3
    rows = {r["index"]: r for r in store.read_table(tmp_path / "t").to_pylist()}
    assert rows[1]["status"] == "failed" and rows[1]["error"] == "RuntimeError: boom"
    assert rows[0]["status"] == "ok" and rows[0]["failure_cause"] == "missed_intravascular"
    assert rows[0]["intravascular_events"] == 1 and rows[0]["intravascular_missed"] == 1
    assert rows[0]["target_depth_mm"] == 42.0
    # a rerun retries only the failed task (now passing)
    calls.clear()
    monkeypatch.setattr(needleguide.session, "run_session", _fake_session(calls, None))
    res = run_trial(spec, tmp_path / "t", workers=1, processes=False)
    assert (res.resumed, res.ran, calls) == (2, 1, [bad])
    assert all(r["status"] == "ok" for r in store.read_table(tmp_path / "t").to_pylist())


def test_resume_runs_only_missing_tasks(tmp_path, monkeypatch):
    import needleguide.session

    spec = TrialSpec.build(["sacroiliac"], "us,fluoro", 3, SPEC, 1)
    calls: list = []
    monkeypatch.setattr(needleguide.session, "run_session", _fake_session(calls, None))
    out = tmp_path / "t"
    assert run_trial(spec, out, workers=1, processes=False).ran == 6
    parts = store.part_files(out)
    assert len(parts) == 6  # tiny trials: one part per row
    lost = pq.read_table(parts[2]).column("task_key").to_pylist()
    parts[2].unlink()
    calls.clear()
    res = run_trial(spec, out, workers=1, processes=False)
    assert (res.resumed, res.ran, len(calls)) == (5, 1, 1)
    t = store.read_table(out)
    assert t.num_rows == 6
    assert [r["task_key"] for r in t.to_pylist() if r["run_id"] == res.run_id] == lost
    runs = json.loads((out / "trial.json").read_text())["runs"]
    assert [r["ran"] for r in runs] == [6, 1]


def test_changed_arguments_refused_unless_force(tmp_path, monkeypatch):
    import needleguide.session

    calls: list = []
    monkeypatch.setattr(needleguide.session, "run_session", _fake_session(calls, None))
    out = tmp_path / "t"
    run_trial(TrialSpec.build(["sacroiliac"], "us", 2, SPEC, 1), out, workers=1,
              processes=False)
    bigger = TrialSpec.build(["sacroiliac"], "us", 3, SPEC, 1)
    with pytest.raises(UserError, match="--n was 2, now 3"):
        run_trial(bigger, out, workers=1, processes=False)
    calls.clear()
    res = run_trial(bigger, out, workers=1, processes=False, force=True)
    assert (res.kept_on_force, res.ran, len(calls)) == (2, 1, 1)  # same patients: kept
    other = TrialSpec.build(["sacroiliac"], "us", 3, SPEC, 2)
    res = run_trial(other, out, workers=1, processes=False, force=True)
    assert (res.kept_on_force, res.ran) == (0, 3)  # another seed: other patients
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("x")
    with pytest.raises(UserError, match="did not write"):
        run_trial(other, tmp_path / "x", workers=1, processes=False)


# -- the real CLI, real sessions, worker processes -------------------------------------------
def _cli_json(args, capsys) -> dict:
    rc = main(["trial", *args, "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    return json.loads(cap.out.strip().splitlines()[-1])


@pytest.mark.slow
def test_tiny_trial_via_cli_writes_parquet(tmp_path, capsys):
    out = tmp_path / "trial"
    j = _cli_json([*FAST, "--n", "2", "--seed", "1", "--population", SPEC, "--workers", "2",
                   "--out", str(out)], capsys)
    assert (j["tasks"], j["ran"], j["failed"]) == (2, 2, 0)
    assert j["procedures_per_hour"] > 0 and j["groups"][0]["n"] == 2
    t = ds.dataset(out / "rows", format="parquet").to_table()
    assert t.schema.equals(store.SCHEMA) and t.num_rows == 2
    for r in t.to_pylist():
        assert r["status"] == "ok" and r["modality"] == "us" and r["trial_seed"] == 1
        assert r["final_tip_error_mm"] is not None and r["worker"].startswith("tcp://")
        assert (r["failure_cause"] is None) == bool(r["success"])
    # the same command again: nothing recomputed
    j2 = _cli_json([*FAST, "--n", "2", "--seed", "1", "--population", SPEC, "--workers",
                    "1", "--out", str(out)], capsys)
    assert (j2["ran"], j2["resumed"]) == (0, 2)
    rc = main(["trial", *FAST, "--n", "3", "--seed", "1", "--population", SPEC,
               "--out", str(out)])
    assert rc == 2 and "--n was 2, now 3" in capsys.readouterr().err


@pytest.mark.slow
def test_interrupted_trial_resumes(tmp_path, capsys):
    out = tmp_path / "trial"
    args = [*FAST, "--n", "3", "--seed", "3", "--workers", "1", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "needleguide", "trial", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    try:
        deadline = time.monotonic() + 300
        while not store.part_files(out) and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=120)[1].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err
    before = store.read_table(out).column("task_key").to_pylist()
    assert 1 <= len(before) < 3
    m = json.loads((out / "trial.json").read_text())
    assert m["runs"][0]["interrupted"] is True and m["runs"][0]["ran"] == len(before)
    j = _cli_json(args, capsys)
    assert (j["resumed"], j["ran"]) == (len(before), 3 - len(before))
    t = store.read_table(out).to_pylist()
    assert len(t) == 3
    again = {r["task_key"] for r in t if r["run_id"] == j["run_id"]}
    assert again == {r["task_key"] for r in t} - set(before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_external_scheduler_and_worker(tmp_path, capsys):
    from distributed import Client

    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"], env=ENV,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1",
             "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1"], env=ENV,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(addr, timeout=60) as c:
            c.wait_for_workers(1, timeout=120)
            workers = set(c.scheduler_info(n_workers=-1)["workers"])
        j = _cli_json([*FAST, "--n", "1", "--scheduler", addr, "--out", str(tmp_path / "t")],
                      capsys)
        assert (j["ran"], j["failed"], j["workers"]) == (1, 0, 1)
        rows = store.read_table(tmp_path / "t").to_pylist()
        assert rows[0]["status"] == "ok" and rows[0]["worker"] in workers
        rc = main(["trial", *FAST, "--scheduler", addr, "--workers", "2", "--out",
                   str(tmp_path / "u")])
        assert rc == 2 and "--workers: only for the embedded cluster" in \
            capsys.readouterr().err
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()



def test_evaluate_draws_its_phantoms_through_the_trial_population():
    """`evaluate` and `trial` share one population machinery: the labelled-case phantoms
    are drawn by `Population.factors`, value for value what the evaluators drew before
    (uniform BMI, then an equiprobable degeneration, from one generator)."""
    import numpy as np

    from needleguide.lab.population import EVAL_CONTRAST, EVAL_LEVELS, EVAL_NEEDLE

    for s in range(200):
        for pop, lo, hi, k in ((EVAL_NEEDLE, 19.0, 38.0, 4), (EVAL_LEVELS, 19.0, 40.0, 3),
                               (EVAL_CONTRAST, 20.0, 38.0, 3)):
            a, b = np.random.default_rng([s, 7]), np.random.default_rng([s, 7])
            bmi, deg = pop.factors(a)
            assert (bmi, deg) == (float(b.uniform(lo, hi)), int(b.integers(0, k)))
            assert isinstance(deg, int) and a.random() == b.random()  # streams stay in step
