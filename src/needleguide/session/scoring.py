"""How a session is scored and packed for the report: one set of functions used by the
session engine (``run_session``, the virtual operator) and by the browser trainer
(``live.trainer.TrainerSession.finish``, a person at the controls), so that both give the
same ``simulate --json`` keys with the same rounding and the same success rule.

Success = the final true tip within the procedure's tolerance of the intended target,
no intravascular injection that went undetected, and no aborted injection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from needleguide.frame import Dose
from needleguide.session.models import Event, SessionConfig, SessionResult, StepRecord


def tip_error_mm(tip_mm, target_mm) -> float:
    """True tip-to-target distance (mm, unrounded)."""
    return float(np.linalg.norm(np.asarray(tip_mm, float) - np.asarray(target_mm, float)))


def aborted(events: Iterable[Event]) -> bool:
    """Whether the injection was aborted (an ``injection_aborted`` event)."""
    return any(e.kind == "injection_aborted" for e in events)


def succeeded(final_mm: float, tolerance_mm: float, events: Sequence[Event]) -> bool:
    """The success rule: final tip within tolerance, not aborted, and no intravascular
    injection that went undetected."""
    return bool(final_mm <= tolerance_mm and not aborted(events) and not any(
        e.kind == "intravascular_injection" and not e.detected for e in events))


def score_session(*, final_mm: float, tolerance_mm: float, events: Sequence[Event],
                  passes: int, time_s: float, dose: Dose, contrast_ml: float,
                  steps: Sequence[StepRecord], injectate_ml: float, shots: int,
                  analyser: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The session's metrics (the ``simulate --json`` values and the report's table):
    ``final_mm`` the true tip-to-target distance (unrounded), ``time_s`` the session
    clock at the end, ``dose`` the fluoroscope's totals (zeros for ultrasound),
    ``analyser`` per view the needle analyser's frames and hits."""
    return {
        "final_tip_error_mm": round(final_mm, 2), "tolerance_mm": tolerance_mm,
        "success": succeeded(final_mm, tolerance_mm, events),
        "passes": passes, "procedure_time_s": round(time_s, 1),
        "fluoro_time_s": round(dose.fluoro_time_s, 2),
        "dap_gy_cm2": round(dose.dap_gy_cm2, 5),
        "reference_air_kerma_mgy": round(dose.air_kerma_mgy, 4),
        "contrast_ml": round(contrast_ml, 2), "steps": len(steps),
        "detection_rate": round(float(np.mean([s.detected for s in steps])) if steps else 0.0,
                                3),
        "injectate_ml": injectate_ml, "shots": shots,
        "analyser": {v: dict(c, rate=round(c["found"] / c["frames"], 3))
                     for v, c in analyser.items()}}


def plan_summary(*, target_name: str, target_mm, plan, proc, level: str | None,
                 level_reached: str | None, level_check: dict | None, aim_name: str,
                 side: str, views: dict[str, Any]) -> dict[str, Any]:
    """The plan as the report and ``session.json`` show it (``plan``: a
    ``session.plan.PathPlan``; ``proc``: the catalogue procedure)."""
    return {"target": target_name, "target_mm": np.round(target_mm, 2).tolist(),
            "level_intended": level, "level_reached": level_reached,
            "level_check": level_check, "aim": aim_name,
            "entry_mm": np.round(plan.entry_mm, 2).tolist(),
            "path_mm": round(plan.path_mm, 1), "needle_length_mm": plan.needle_length_mm,
            "gauge": proc.needle.gauge, "crossed": list(plan.crossed),
            "blocked_mm": plan.blocked_mm, "level": level, "side": side,
            "views": views, "avoid": list(proc.avoid)}


def session_extra(cfg: SessionConfig, proc, confirm_info: dict[str, Any]) -> dict[str, Any]:
    """The result's ``extra``: the patient, the procedure's name, the confirmation."""
    return {"patient": {"region": proc.phantom_region, "bmi": cfg.bmi,
                        "degeneration": cfg.degeneration, "seed": cfg.seed},
            "procedure_name": proc.name, "confirm": confirm_info}


def build_result(cfg: SessionConfig, proc, metrics: dict[str, Any], events: list[Event],
                 steps: list[StepRecord], plan: dict[str, Any],
                 key_frames: list[tuple[str, np.ndarray]], video: list[np.ndarray],
                 confirm_info: dict[str, Any], imaging: list | None = None,
                 dose_events: list | None = None) -> SessionResult:
    """The :class:`SessionResult` that ``report.write_report`` renders."""
    return SessionResult(cfg, metrics, events, steps, plan, key_frames, video,
                         session_extra(cfg, proc, confirm_info),
                         imaging=list(imaging or []), dose_events=list(dose_events or []))


__all__ = ["aborted", "build_result", "plan_summary", "score_session", "session_extra",
           "succeeded", "tip_error_mm"]
