"""The summary of a virtual trial's rows: one group per procedure × modality (n, success,
median tip error, fluoroscopy time, DAP, missed intravascular injections, failure causes)
and the run's throughput. Success shares are of the rows with status "ok"."""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Any

import pyarrow as pa

from needleguide.lab import trial_store as store
from needleguide.lab.trial import RunResult


def _median(values: list[Any]) -> float | None:
    v = [float(x) for x in values if x is not None]
    return round(median(v), 4) if v else None


def groups(rows: list[dict[str, Any]], procedures: tuple[str, ...],
           modalities: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per procedure × modality statistics of ``rows`` (in the trial's order)."""
    out = []
    for p in procedures:
        for m in modalities:
            g = [r for r in rows if r["procedure"] == p and r["modality"] == m]
            ok = [r for r in g if r["status"] == "ok"]
            succ = sum(1 for r in ok if r["success"])
            out.append({
                "procedure": p, "modality": m, "n": len(g), "ok": len(ok),
                "failed": len(g) - len(ok), "success": succ,
                "success_rate": round(succ / len(ok), 4) if ok else None,
                "median_tip_error_mm": _median([r["final_tip_error_mm"] for r in ok]),
                "median_procedure_time_s": _median([r["procedure_time_s"] for r in ok]),
                "median_fluoro_time_s": _median([r["fluoro_time_s"] for r in ok]),
                "median_dap_gy_cm2": _median([r["dap_gy_cm2"] for r in ok]),
                "intravascular_events": sum(r["intravascular_events"] or 0 for r in ok),
                "intravascular_missed": sum(r["intravascular_missed"] or 0 for r in ok),
                "failure_causes": dict(Counter(r["failure_cause"] for r in ok
                                               if r["failure_cause"]).most_common()),
            })
    return out


def trial_rows(res: RunResult) -> pa.Table:
    """The rows of the trial's current task set (latest per task key)."""
    t = store.read_table(res.out)
    keys = {t_["task_key"] for t_ in res.spec.tasks()}
    mask = pa.array([k in keys for k in t.column("task_key").to_pylist()], pa.bool_())
    return t.filter(mask)


def summary(res: RunResult, table: pa.Table | None = None) -> dict[str, Any]:
    """The ``trial --json`` object."""
    t = trial_rows(res) if table is None else table
    rows = t.to_pylist()
    return {
        "out": str(res.out), "trial": res.spec.model_dump(mode="json"), "run_id": res.run_id,
        "tasks": res.total, "rows": len(rows), "resumed": res.resumed, "ran": res.ran,
        "failed": sum(1 for r in rows if r["status"] != "ok"),
        "workers": res.workers, "startup_s": round(res.startup_s, 2),
        "elapsed_s": round(res.elapsed_s, 2),
        "procedures_per_hour": round(res.per_hour, 1),
        "kept_on_force": res.kept_on_force,
        "groups": groups(rows, res.spec.procedures, res.spec.modalities),
    }
