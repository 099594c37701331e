"""A finished trainer session scored like ``simulate`` (``session/scoring.py``): the same
metrics, the same success rule, a ``SessionResult`` that ``report.write_report``
renders.

At the end (*trainer rules*): a session that ends on an intravascular alarm not followed
by a clean test dose gives no therapeutic injection (``injection_aborted``); a needle
left in a vessel without a test dose at that position receives the therapeutic
injection there (``intravascular_injection``, not detected).
"""

from __future__ import annotations

import numpy as np

from needleguide.session.confirm import true_compartment
from needleguide.session.models import Event, SessionResult
from needleguide.session.scoring import build_result, plan_summary, score_session, tip_error_mm

SAME_TIP_MM = 0.5  # a test dose this close to the final tip tested it


def closing_events(t_s: float, needle, doses) -> list[Event]:
    """The events the end of the session adds (module docstring)."""
    if doses.alarm:
        return [Event(t_s, "injection_aborted", True, "the session ended on an "
                      "intravascular alarm: no therapeutic injection")]
    if not needle.in_body:
        return []
    tip = needle.body.tip
    tested = doses.tested_tip is not None and \
        float(np.linalg.norm(tip - doses.tested_tip)) <= SAME_TIP_MM
    if tested:
        return []
    comp, vasc = true_compartment(needle.patient, tip)
    if vasc >= 0.5:
        return [Event(t_s, "intravascular_injection", False, "therapeutic injection into "
                      f"{comp.replace('_', ' ')}: no test dose at this needle position")]
    return []


def trainer_result(*, cfg, proc, plan, target_name: str, target_mm, level, side: str,
                   views: dict, needle, doses, log, clock_s: float, dose, shots: int,
                   analyser: dict, key_frames: list, dose_events: list) -> SessionResult:
    """The scored result of a trainer session at ``clock_s`` (the session clock)."""
    events = log.events
    events.extend(closing_events(clock_s, needle, doses))
    metrics = score_session(
        final_mm=tip_error_mm(needle.body.tip, target_mm), tolerance_mm=proc.tolerance_mm,
        events=events, passes=needle.passes, time_s=clock_s, dose=dose,
        contrast_ml=doses.contrast_ml, steps=needle.steps,
        injectate_ml=proc.injectate_ml.min_ml, shots=shots, analyser=analyser)
    planj = plan_summary(target_name=target_name, target_mm=target_mm, plan=plan, proc=proc,
                         level=level, level_reached=level, level_check=None,
                         aim_name=target_name, side=side, views=views)
    planj["trainee_entry_mm"] = None if needle.entry is None else \
        np.round(needle.entry, 2).tolist()
    scfg = cfg.session_config(dsa=bool(doses.dsa_used))
    return build_result(scfg, proc, metrics, list(events), list(needle.steps), planj,
                        list(key_frames), [], doses.confirm_info, dose_events=dose_events)


__all__ = ["closing_events", "trainer_result"]
