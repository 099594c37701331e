"""One virtual-trial task: one simulated procedure on one drawn patient under one modality,
run on a Dask worker, returned as one row (:data:`needleguide.lab.trial_store.SCHEMA`).

Whatever goes wrong inside the session is caught here and becomes a row with status
"failed" and the error text. A plan that finds no way to the target for this patient
(``plan: ...`` from the session: no in-plane window beyond the probe, a path longer than
the longest needle) is a clinical outcome, not an error: status "ok", success False, the
failure cause named, metrics empty.

Failure causes (``failure_cause``; None when successful), from what the session recorded,
first match wins:

* ``missed_intravascular`` — an ``intravascular_injection`` event not detected (US cannot
  show intravascular fluid; live FL misses some);
* ``aborted_intravascular`` / ``aborted_false_alarm`` — the injection was aborted after a
  second intravascular alarm (true / false alarm);
* ``intrathecal`` — an ``intrathecal_injection`` event;
* ``wrong_level`` — the operator worked at another level than intended (under US the
  level is counted up from the sacrum by the US level analyser: ``session/level_check.py``;
  under fluoroscopy the level is taken as found);
* ``no_path`` / ``target_beyond_needle`` — the plan found no clear path / the path is
  longer than the longest spinal needle;
* ``target_at_depth_limit`` — US: the target lay so deep that the imaging depth sat at its
  160 mm limit;
* ``bone_in_path`` — no clear path existed and the least blocked one crossed bone (for
  in-plane US: the target lay behind bone, in its acoustic shadow);
* ``needle_not_seen`` — the needle analyser found the needle on fewer than 25 % of the
  steps (detection rate);
* ``off_target`` — none of the above: the tip ended farther than the tolerance.

"""

from __future__ import annotations

import time
from typing import Any

from needleguide.errors import UserError

MODALITIES = ("us", "fluoro", "fluoro-dsa")
NOT_SEEN_RATE = 0.25
US_DEPTH_LIMIT_MM = 160.0  # the session's largest ultrasound imaging depth
METRICS = ("success", "final_tip_error_mm", "tolerance_mm", "passes", "procedure_time_s",
           "fluoro_time_s", "dap_gy_cm2", "reference_air_kerma_mgy", "contrast_ml",
           "detection_rate")


def session_config(task: dict[str, Any]):
    """The :class:`needleguide.session.SessionConfig` of a task (a UserError if bad)."""
    from needleguide.session import SessionConfig

    mod = task["modality"]
    return SessionConfig.build(procedure=task["procedure"], level=task.get("level"),
                               modality="us" if mod == "us" else "fluoro",
                               dsa=mod == "fluoro-dsa", bmi=task["bmi"],
                               degeneration=task["degeneration"], seed=task["patient_seed"],
                               record_video=False)


def advised_modality(task: dict[str, Any]) -> str | None:
    """The advisor's first choice for this patient (degeneration ≥ 2 counts as
    degenerative); None if the advisor refuses the inputs."""
    from needleguide.advisor import advise

    try:
        return advise(procedure=task["procedure"], level=task.get("level"),
                      pregnant=bool(task["pregnant"]), age=float(task["age"]),
                      bmi=float(task["bmi"]), degenerative=task["degeneration"] >= 2,
                      explain_changes=False).first.modality
    except (UserError, ValueError):
        return None


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "local"


def failure_cause(metrics: dict[str, Any], events: list[Any], plan: dict[str, Any],
                  modality: str, views: dict[str, Any]) -> str | None:
    """The mechanism of an unsuccessful session (see the module docstring)."""
    if metrics.get("success"):
        return None
    vasc = [e for e in events if e.kind == "intravascular_injection"]
    if any(not e.detected for e in vasc):
        return "missed_intravascular"
    if any(e.kind == "injection_aborted" for e in events):
        return "aborted_intravascular" if vasc else "aborted_false_alarm"
    if any(e.kind == "intrathecal_injection" for e in events):
        return "intrathecal"
    if plan.get("level_reached") not in (None, plan.get("level_intended")):
        return "wrong_level"
    if modality == "us" and float(views.get("depth_mm") or 0.0) >= US_DEPTH_LIMIT_MM:
        return "target_at_depth_limit"
    if float(plan.get("blocked_mm") or 0.0) > 0.0:
        return "bone_in_path"
    if float(metrics.get("detection_rate") or 0.0) < NOT_SEEN_RATE:
        return "needle_not_seen"
    return "off_target"


def result_row(res: Any, modality: str) -> dict[str, Any]:
    """The metric columns of a finished session."""
    m = res.metrics
    vasc = [e for e in res.events if e.kind == "intravascular_injection"]
    row = {k: m.get(k) for k in METRICS}
    row.update(
        intravascular_events=len(vasc),
        intravascular_missed=sum(1 for e in vasc if not e.detected),
        failure_cause=failure_cause(m, res.events, res.plan, modality,
                                    res.plan.get("views") or {}),
        target_depth_mm=res.plan.get("path_mm"),
        events=";".join(f"{e.kind}:{int(bool(e.detected))}" for e in res.events))
    return row


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one task (a Dask task: module-level, picklable); always returns a row."""
    t0 = time.perf_counter()
    row = dict(task)
    row.update(status="ok", error=None, worker=_worker_name())
    try:
        row["advised_modality"] = advised_modality(task)
        cfg = session_config(task)
        from needleguide import session  # looked up per call (tests replace it)

        res = session.run_session(cfg)
        row.update(result_row(res, task["modality"]))
    except UserError as e:
        msg = str(e)
        if msg.startswith("plan:"):
            cause = "target_beyond_needle" if "longer than the longest" in msg else "no_path"
            row.update(success=False, failure_cause=cause, error=msg)
        else:
            row.update(status="failed", error=msg)
    except Exception as e:  # noqa: BLE001 - recorded in the row, the trial goes on
        row.update(status="failed", error=f"{type(e).__name__}: {e}")
    row["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return row
