"""The session engine: a virtual operator runs one procedure on one patient under one
modality — plan, advance in steps, image, correct or redirect from the needle analyser's
output, confirm, inject — and the session is scored against the truth.

The operator's knowledge: the plan, what it commanded (entry, aim, inserted length), the
analysers' outputs on frames without truth, and touch (bone stops the needle; a nerve
gives paraesthesia). The truth (the real tip) is used only to move the needle physically
and to score (tip-to-target error, events).

Needle motion (*assumptions*, see docs/session.md): per pass an aiming error N(0, 1°) and
a bevel/tissue curvature N(0, 0.5°/10 mm) in each of the two directions across the shaft;
per step hand tremor N(0, 0.25°) on the direction and N(0, 0.3 mm) on the advance; the
skin entry of each pass lands N(0, 1 mm) from the planned one. All draws come from the
seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from needleguide.anatomy.phantom import build_phantom
from needleguide.errors import UserError
from needleguide.procedures import get_procedure
from needleguide.scene import Needle, Scene
from needleguide.scene.needle import next_tissue_drag_mm
from needleguide.session.models import Event, SessionConfig, SessionResult, StepRecord
from needleguide.session.operator import Operator
from needleguide.session.plan import is_bone
from needleguide.session.scoring import build_result, plan_summary, score_session, tip_error_mm

DEFLECTION_DEG = 1.5
TREMOR_DEG = 0.25
TREMOR_MM = 0.3
ENTRY_MM = 1.0
AIM_DEG = 1.0  # aiming error of each pass
CURVE_DEG_PER_10MM = 0.5  # bevel / tissue deflection of each pass
STEER_DEG = 1.0  # largest change of direction per step without withdrawing
REDIRECT_DEG = 8.0  # a larger needed turn means withdraw and re-insert
MAX_WALKOFF = 3
WALKOFF_MM = 5.0
WALKOFF_DEG = 4.0  # re-angling after withdrawing from bone
BONY_SLACK_MM = 3.0  # a periosteal target: bone felt this much (+ tolerance) short ends it
REENTRY_MM = 20.0  # off the line shallower than this, beyond what steering can correct,
# on two images in a row: re-insert rather than steer
GATE_MM = 8.0  # estimates farther than this (+15% of the depth) from the aim are ignored
# simulated clock (*assumptions*): preparation and planning, per step, per redirection
T_SETUP_S = {"fluoro": 90.0, "us": 120.0}
T_STEP_S = 4.0
T_REDIRECT_S = 15.0
VESSELS = ("segmental_artery", "blood_vessel", "epidural_venous_plexus", "aorta", "ivc",
           "vertebral_artery", "carotid", "internal_jugular")
NERVES = ("nerve_root", "drg", "medial_branch", "third_occipital_nerve", "spinal_cord")
THECAL = ("csf", "dura")


class Body:
    """The physical needle in the patient (truth): skin entry, tip, current direction and
    the pass's bevel curvature. The tip integrates the direction step by step; the shaft
    is drawn straight from the entry to the tip."""

    def __init__(self, patient, plan, gauge: int, rng: np.random.Generator):
        self.patient = patient
        self.plan = plan
        self.gauge = gauge
        self.rng = rng
        self.entry = plan.entry_mm.copy()
        self.axis = plan.axis.copy()
        self.tip = self.entry.copy()
        self.inserted = 0.0
        self.curve = np.zeros(3)
        self.drag = 0.0  # the tissue dragged along the shaft (Needle.tissue_drag_mm)

    @staticmethod
    def _perp(axis) -> np.ndarray:
        a = np.cross(axis, [0.0, 0.0, 1.0])
        if np.linalg.norm(a) < 1e-6:
            a = np.cross(axis, [1.0, 0.0, 0.0])
        a /= np.linalg.norm(a)
        return np.stack([a, np.cross(axis, a)])

    @staticmethod
    def _unit(v):
        return np.asarray(v, float) / np.linalg.norm(v)

    def new_pass(self, cmd_entry, cmd_axis) -> None:
        """Insert again from the skin toward ``cmd_axis`` (new entry scatter, new bevel
        curvature draw)."""
        P = self._perp(cmd_axis)
        self.entry = np.asarray(cmd_entry, float) + self.rng.normal(0, ENTRY_MM, 2) @ P
        self.curve = np.radians(self.rng.normal(0, CURVE_DEG_PER_10MM, 2)) @ P / 10.0
        self.axis = self._unit(np.asarray(cmd_axis, float) +
                               np.radians(self.rng.normal(0, AIM_DEG, 2)) @ P)
        self.tip = self.entry.copy()
        self.inserted = 0.0
        self.drag = 0.0

    def steer(self, want_axis, max_deg: float = STEER_DEG) -> None:
        """Turn toward ``want_axis`` without withdrawing, by at most ``max_deg``."""
        want = self._unit(want_axis)
        ang = float(np.arccos(np.clip(want @ self.axis, -1.0, 1.0)))
        lim = np.radians(max_deg)
        if ang > lim:
            want = self._unit(self.axis + (want - self.axis) * (lim / ang))
        self.axis = want

    def advance(self, step_mm: float) -> None:
        """Push ``step_mm`` (plus tremor) along the current direction, which bends by the
        bevel curvature and the hand tremor on the way."""
        d = max(0.0, step_mm + self.rng.normal(0, TREMOR_MM))
        P = self._perp(self.axis)
        self.axis = self._unit(self.axis + self.curve * d +
                               np.radians(self.rng.normal(0, TREMOR_DEG, 2)) @ P)
        self.tip = self.tip + self.axis * d
        self.inserted += d
        self.drag = next_tissue_drag_mm(self.drag, d)

    def withdraw(self, mm: float) -> None:
        back = min(mm, self.inserted)
        self.tip = self.tip - self.axis * back
        self.inserted -= back
        self.drag = next_tissue_drag_mm(self.drag, -back)

    def back_out_of_bone(self) -> bool:
        """If the tip is in bone, withdraw in 0.5 mm steps until it is not (the needle stops
        on the cortex); True if bone was touched."""
        hit = False
        while self.inserted > 0.5 and is_bone(self.patient, int(self.patient.label_at(
                self.tip[None])[0])):
            self.withdraw(0.5)
            hit = True
        return hit

    def needle(self) -> Needle:
        ins = float(np.linalg.norm(self.tip - self.entry))
        if ins < 1.0:
            return Needle.from_entry_and_target(self.entry, self.entry + self.axis,
                                                gauge=self.gauge,
                                                length_mm=self.plan.needle_length_mm,
                                                inserted_mm=max(ins, 1e-3))
        nd = Needle.from_entry_and_target(self.entry, self.tip, gauge=self.gauge,
                                          length_mm=self.plan.needle_length_mm)
        return dataclasses.replace(nd, tissue_drag_mm=self.drag)


def run_session(cfg: SessionConfig,
                progress: Callable[[float, str], None] | None = None) -> SessionResult:
    """Run one simulated procedure; ``progress(fraction, text)`` is called as it goes."""
    proc = get_procedure(cfg.procedure)
    if proc.phantom_region is None:
        raise UserError(f"procedure: {cfg.procedure!r} has no phantom region to simulate on")
    level = proc.resolve_level(cfg.level)
    sd = proc.resolve_side(cfg.side)  # None for a midline procedure (caudal, interlaminar)
    side = sd or "right"  # (the operator's geometry still needs a side to stand on)
    tname = proc.target_names(level, sd)[0]
    rng = np.random.default_rng(cfg.seed)
    tick = progress or (lambda f, s: None)
    tick(0.02, "building the phantom")
    patient = build_phantom(proc.phantom_region, bmi=cfg.bmi, degeneration=cfg.degeneration,
                            seed=cfg.seed, spacing_mm=cfg.phantom_spacing_mm)
    target = patient.landmark(tname)  # the intended target: what the session is scored on
    level_used, level_check = level, None
    if cfg.count_levels and cfg.modality == "us" and proc.phantom_region == "lumbar" \
            and level is not None:
        from needleguide.session.level_check import identify_level_us

        tick(0.05, "counting levels up from the sacrum")
        level_used, level_check = identify_level_us(patient, level, side, cfg.seed)
    aim_name = tname if level_used == level else \
        proc.targets[0].format(level=level_used, side=sd)
    if aim_name not in patient.landmarks:  # the phantom has no such level: stays put
        level_used, aim_name = level, tname
    aim = patient.landmark(aim_name)  # what the operator aims at (the level counted)
    op = Operator.create(cfg, proc, patient, aim, level_used, side)
    plan = op.plan
    body = Body(patient, plan, proc.needle.gauge, rng)
    events: list[Event] = []
    steps: list[StepRecord] = []
    t = T_SETUP_S[cfg.modality]
    passes = 1
    cmd_axis = plan.axis.copy()
    cmd_entry = plan.entry_mm.copy()
    body.new_pass(cmd_entry, cmd_axis)
    depth_goal = plan.path_mm
    walkoffs = 0
    far_off_before = False
    early_off_before = early_off = False
    seen: set[str] = set()
    max_steps = int(4 * plan.path_mm / cfg.step_mm) + 40
    tick(0.1, f"pass 1: {plan.path_mm:.0f} mm to {tname}")
    for _ in range(max_steps):
        step = min(cfg.step_mm, depth_goal - body.inserted)
        if step <= 0.2:
            break
        body.advance(step)
        t += T_STEP_S
        touched_bone = body.back_out_of_bone()
        score_tissue(patient, body, t, events, seen, aim_name, cfg.modality)
        scene = Scene(patient).with_needle(body.needle()).with_time(t)
        guess = plan.point_at(body.inserted)  # where the operator means the tip to be
        gate = GATE_MM + 0.15 * body.inserted
        est, det = op.look(scene, guess, f"pass {passes}  {body.inserted:.0f} mm", gate)
        err_true = float(np.linalg.norm(body.tip - target))
        off = None
        action = None
        remaining = depth_goal - body.inserted
        if est is not None and np.linalg.norm(est - guess) > gate:
            est = None  # not where this needle can be: the operator ignores it
        if est is not None:
            depth_est = plan.depth_of(est)
            off = float(np.linalg.norm(est - plan.point_at(depth_est)))
            # the needle's direction: from the previous estimate of this pass, else the aim
            a_est = Body._unit(est - plan.entry_mm)
            to_t = plan.target_mm - est
            along = float(to_t @ a_est)
            miss = float(np.linalg.norm(to_t - along * a_est))  # if pushed straight on
            want = Body._unit(to_t)
            turn = float(np.degrees(np.arccos(np.clip(want @ a_est, -1.0, 1.0))))
            early_off = off > max(0.5 * proc.tolerance_mm,
                                  steerable_mm(remaining, cfg.step_mm)) and \
                depth_est < REENTRY_MM
            if early_off and early_off_before and passes < cfg.max_passes:
                # off the line near the skin on two images in a row: withdraw and
                # re-insert at the planned entry (entry and aim are drawn anew)
                action = "reenter"
            elif miss > 0.5 * proc.tolerance_mm and remaining > 8.0 and depth_est >= 15.0:
                far_off = turn > REDIRECT_DEG and miss > 2.0 * proc.tolerance_mm and \
                    passes < cfg.max_passes and remaining > 15.0
                # withdraw and re-insert along the plan only when two images in a row say
                # so (one misplaced detection does not cost a pass); otherwise steer
                action = "redirect" if far_off and far_off_before else "correct"
                far_off_before = far_off
            else:
                far_off_before = False
        else:
            far_off_before = False
        early_off_before = est is not None and early_off
        tr = body.tip - plan.point_at(plan.depth_of(body.tip))
        steps.append(StepRecord(t, passes, body.inserted, err_true, off,
                                est is not None, op.dose.dap_gy_cm2, op.dose.air_kerma_mgy,
                                float(np.linalg.norm(tr)), None if est is None else
                                float(np.linalg.norm(est - body.tip))))
        if touched_bone:
            on_target = proc.bony_endpoint and \
                depth_goal - body.inserted <= proc.tolerance_mm + BONY_SLACK_MM
            events.append(Event(t, "bone_contact", True,
                                f"{patient.tissue_name_at(body.tip + body.axis)} at "
                                f"{body.inserted:.0f} mm"
                                + (" (the target bone: end point)" if on_target else "")))
            if on_target:
                break  # a periosteal target: the needle rests on the bone it aimed at
            if depth_goal - body.inserted > 8.0 and passes < cfg.max_passes:
                action = "redirect"
            elif depth_goal - body.inserted > 2.0 and walkoffs < MAX_WALKOFF:
                walkoffs += 1
                body.withdraw(WALKOFF_MM)
                if est is not None:
                    # walk off the bone toward the target seen on the image
                    body.steer(Body._unit(plan.target_mm - est), WALKOFF_DEG)
                    how = "toward the imaged target"
                else:
                    # needle not seen: walk it off the bone by feel, alternately to either
                    # side across the path (+1, -1, +2 steps of WALKOFF_DEG)
                    k = (1.0, -2.0, 3.0)[walkoffs - 1] * WALKOFF_DEG
                    body.steer(body.axis + np.tan(np.radians(k)) * op.across(), abs(k))
                    how = f"by feel (turned {k:+.0f} deg across the path)"
                events.append(Event(t, "walk_off_bone", True,
                                    f"withdrawn {WALKOFF_MM:g} mm and re-angled {how}"))
                t += T_STEP_S
            else:
                break
        if len(steps) == 1:
            op.mark(f"pass 1, first step ({body.inserted:.0f} mm)")
        if action == "reenter":
            op.mark(f"pass {passes}: {off:.1f} mm off the line at {body.inserted:.0f} mm "
                    f"(analyser, two images): re-insertion")
            passes += 1
            t += T_REDIRECT_S
            events.append(Event(t, "redirect", True, f"pass {passes}: re-inserted "
                                f"({off:.1f} mm off the line near the skin)"))
            body.new_pass(cmd_entry, cmd_axis)
            far_off_before = early_off_before = False
        elif action == "redirect":
            op.mark(f"pass {passes}: redirect decided at {body.inserted:.0f} mm "
                    f"({'bone' if touched_bone else 'analyser: off course'})")
            passes += 1
            t += T_REDIRECT_S
            events.append(Event(t, "redirect", True, f"pass {passes}: withdrawn and re-aimed"))
            body.new_pass(cmd_entry, cmd_axis)
            depth_goal = plan.path_mm
            far_off_before = early_off_before = False
            tick(min(0.7, 0.1 + 0.6 * len(steps) / max_steps), f"pass {passes}")
        elif action == "correct":
            body.steer(want)
            events.append(Event(t, "correction", True,
                                f"steered {min(turn, STEER_DEG):.1f} deg toward the target "
                                f"(tip {off:.1f} mm off the planned line)"))
        tick(min(0.7, 0.1 + 0.6 * body.inserted / plan.path_mm / passes), f"pass {passes}: "
             f"{body.inserted:.0f}/{plan.path_mm:.0f} mm")
    op.mark(f"end of the advance: {body.inserted:.0f} mm inserted, pass {passes}")
    tick(0.72, "checking the position")
    t, moved = op.check(body, t)
    if moved:
        score_tissue(patient, body, t, events, seen, aim_name, cfg.modality)
    if cfg.force_tip == "intravascular":
        from needleguide.scene.injectate.placement import tip_for_pattern

        vt = tip_for_pattern(patient, "intravascular", level or "L4-L5", side)
        body.entry = vt + (body.entry - body.tip)
        body.tip = vt
        body.inserted = float(np.linalg.norm(vt - body.entry))
        body.axis = Body._unit(vt - body.entry)
        events.append(Event(t, "forced_tip", False, "tip moved into a segmental artery"))
    tick(0.8, "confirming")
    t, contrast_ml = op.confirm(body, t, events)
    tick(0.95, "injecting")
    inj_ml = proc.injectate_ml.min_ml
    t += 10.0 + inj_ml / 0.5
    metrics = score_session(
        final_mm=tip_error_mm(body.tip, target), tolerance_mm=proc.tolerance_mm,
        events=events, passes=passes, time_s=t, dose=op.dose, contrast_ml=contrast_ml,
        steps=steps, injectate_ml=inj_ml, shots=op.shots, analyser=op.analyser)
    if level_used != level:
        events.append(Event(t, "wrong_level", False, f"worked at {level_used}, meant "
                                                      f"{level} ({level_check['result']})"))
    planj = plan_summary(target_name=tname, target_mm=target, plan=plan, proc=proc,
                         level=level, level_reached=level_used, level_check=level_check,
                         aim_name=aim_name, side=side, views=op.view_names)
    tick(1.0, "done")
    return build_result(cfg, proc, metrics, events, steps, planj, op.key_frames, op.video,
                        op.confirm_info, imaging=list(op.imaging.values()),
                        dose_events=list(op.fl.events) if cfg.modality == "fluoro" else [])


def steerable_mm(remaining_mm: float, step_mm: float) -> float:
    """Sideways correction (mm) that steering (``STEER_DEG`` more per step) can still make
    over ``remaining_mm`` of advance, halved: the needle must also be straightened."""
    n = max(0.0, remaining_mm / step_mm)
    return 0.5 * step_mm * n * (n + 1.0) / 2.0 * np.radians(STEER_DEG)


def score_tissue(patient, body: Body, t: float, events: list[Event], seen: set,
                 target_name: str, modality: str) -> None:
    """Events from the tissue under the true tip (scoring only)."""
    name = patient.tissue_name_at(body.tip)
    kind = None
    if name in VESSELS:
        kind, det = "vessel_puncture", False
    elif name in THECAL:
        kind, det = "intrathecal_entry", False
    elif name in NERVES and name not in target_name:
        kind, det = "nerve_contact", True  # paraesthesia
    if kind is not None and (kind, name) not in seen:
        seen.add((kind, name))
        events.append(Event(t, kind, det, f"{name} at {body.inserted:.0f} mm"))


__all__ = ["Body", "run_session", "score_tissue", "steerable_mm"]
