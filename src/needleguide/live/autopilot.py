"""The live session's virtual operator: the session engine's needle (``session.engine.Body``)
pushed along the plan in real time, then the confirmation injection of
``session/confirm.py`` shown frame by frame.

Advance: from the skin entry along the planned axis at ``advance_mm_s``, in ≤ 0.5 mm
sub-steps so that a coarse clock cannot jump through bone. Bone under the tip (touch):
the tip stops on the cortex (``Body.back_out_of_bone``); a periosteal target within
tolerance + ``BONY_SLACK_MM`` ends the advance; otherwise the needle is withdrawn
``WALKOFF_MM`` and re-angled by feel across the path (+1, −2, +3 × ``WALKOFF_DEG``, the
engine's walk-off), a new "pass"; after ``MAX_WALKOFF`` the needle rests on the bone. The
advance ends at the target (closest approach along the needle), on bone, or at the hub.

Confirmation (``session/confirm.py`` constants): fluoroscopy — the C-arm swings to the
confirmation view (the engine's, cached at start-up), 1 mL of contrast (300 mg I/mL at
0.5 mL/s, starting ``START_S`` = 1 s after the phase begins) spreads under live pulsed
fluoroscopy; at the end of the inflow the frames shown (without truth) go to
``classify_sequence`` (on a worker thread: frames keep coming while it reads); its
intravascular alarm withdraws the needle 2 mm and repeats the
test once, a second alarm aborts. Ultrasound — 1 mL of local anaesthetic; the spread is
read by ``visible_spread`` between the first and the last frame. Then "done".
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from needleguide.errors import UserError
from needleguide.frame import Frame
from needleguide.guidance.contrast import classify_sequence
from needleguide.live.config import LiveEvent
from needleguide.scene import Needle
from needleguide.scene.injectate import Injectate, make_injection
from needleguide.session.confirm import RATE_ML_S, TEST_ML, visible_spread
from needleguide.session.engine import BONY_SLACK_MM, MAX_WALKOFF, WALKOFF_DEG, WALKOFF_MM, Body
from needleguide.session.imaging import us_target_px

SUB_STEP_MM = 0.5
HUB_MARGIN_MM = 10.0  # the operator stops this far short of the hub
WITHDRAW_ON_ALARM_MM = 2.0
START_S = 1.0  # injection starts this long into the phase (session: 0.5 s): mask frames,
# and time to build the spread model on the worker thread


class Shifted:
    """An injectate source whose injection clock starts at session time ``t0_s``, built
    in the background (``future``: an :class:`Injectate` with its spread models ready):
    before the injection starts (``START_S``) nothing is injected and the build is not
    waited for; after it, the first call waits. ``error``: why there is no spread."""

    def __init__(self, future: Future, t0_s: float):
        self.future, self.t0_s = future, float(t0_s)
        self.error: str | None = None

    def _source(self, t_rel: float) -> Injectate | None:
        if t_rel < START_S and not self.future.done():
            return None
        try:
            return self.future.result()
        except UserError as e:
            self.error = str(e)
            return None

    def iodine_mg_ml(self, t_s: float):
        src = self._source(t_s - self.t0_s)
        return None if src is None else src.iodine_mg_ml(t_s - self.t0_s)

    def fluid_fraction(self, t_s: float):
        src = self._source(t_s - self.t0_s)
        return None if src is None else src.fluid_fraction(t_s - self.t0_s)


class Autopilot:
    """Phases: "idle" (before the first tick), "advance", "inject", "reading" (the
    contrast classifier runs in the background while frames keep coming), "done",
    "manual" (the needle is driven from outside; :meth:`request_injection` starts a test
    dose at its tip). The injectate's spread model and the contrast classifier run on one
    worker thread (each takes 0.3–2 s: no tick waits for them)."""

    def __init__(self, patient, plan, proc, target_name: str, gauge: int, across,
                 view, modality: str, seed: int, advance_mm_s: float, auto: bool):
        self.patient, self.plan, self.proc = patient, plan, proc
        self.target_name = target_name
        self.view, self.modality, self.seed = view, modality, int(seed)
        self.speed = float(advance_mm_s)
        self.across = np.asarray(across, float)
        self.body = Body(patient, plan, gauge, np.random.default_rng(seed)) if auto else None
        self.phase = "idle" if auto else "manual"
        self.passes = self.walkoffs = 0
        self.t_last: float | None = None
        self.injectate: Shifted | None = None
        self.attempt = 0
        self.t_inject = 0.0
        self.frames: list[Frame] = []
        self.spread_center_px: tuple[float, float] | None = None
        self._inject_at: np.ndarray | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._reading: Future | None = None
        self._error_told = False

    def _submit(self, fn, *args) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live")
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Stop the worker thread (work under way finishes)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # ---- needle ---------------------------------------------------------------------------
    @property
    def needle(self) -> Needle | None:
        """The virtual operator's needle (None in manual mode)."""
        return None if self.body is None else self.body.needle()

    def tip_guess(self) -> np.ndarray:
        """Where the operator means the tip to be: the plan at the inserted length."""
        ins = self.body.inserted if self.body is not None else self.plan.path_mm
        return self.plan.point_at(ins)

    def hand_over(self, t_s: float) -> list[LiveEvent]:
        """An external needle pose arrived: the operator lets go of the needle."""
        if self.body is None:
            return []
        self.body = None
        ev = [LiveEvent(t_s, "info", "external needle pose: the virtual operator lets go "
                        "of the needle")]
        if self.phase in ("idle", "advance"):
            self.phase = "manual"
        return ev

    def request_injection(self, tip_mm) -> None:
        """Start a test dose at ``tip_mm`` on the next step (manual mode or after done)."""
        self._inject_at = np.asarray(tip_mm, float).copy()

    # ---- clock ----------------------------------------------------------------------------
    def step(self, t_s: float) -> list[LiveEvent]:
        """Advance the operator to session time ``t_s``; the events it causes."""
        ev: list[LiveEvent] = []
        dt = 0.0 if self.t_last is None else max(t_s - self.t_last, 0.0)
        self.t_last = t_s
        if self.phase == "idle":
            self.phase = "advance"
            self.passes = 1
            ev.append(LiveEvent(t_s, "pass", f"pass 1: {self.plan.path_mm:.0f} mm from the "
                                f"skin entry to {self.target_name}"))
        elif self.phase == "advance":
            ev += self._advance(t_s, dt * self.speed)
        elif self.phase == "inject" and t_s >= self.t_inject + self._duration():
            ev += self._read_injection(t_s)
        elif self.phase == "reading" and self._reading is not None and self._reading.done():
            ev += self._contrast_result(t_s, self._reading.result())
        inj = self.injectate
        if inj is not None and inj.error and not self._error_told:
            self._error_told = True
            ev.append(LiveEvent(t_s, "info", f"no injectate spread: {inj.error}"))
        if self._inject_at is not None and self.phase in ("manual", "done"):
            tip, self._inject_at = self._inject_at, None
            self.attempt = 0
            ev += self._start_injection(t_s, tip)
        return ev

    def _advance(self, t_s: float, d_mm: float) -> list[LiveEvent]:
        b, target = self.body, self.plan.target_mm
        while d_mm > 1e-9:
            ahead = float((target - b.tip) @ b.axis)
            if ahead <= 0.05:
                return self._start_injection(t_s, b.tip, f"tip at the target ({b.inserted:.0f}"
                                             f" mm inserted, {self._miss():.1f} mm from it)")
            if b.inserted >= self.plan.needle_length_mm - HUB_MARGIN_MM:
                return self._start_injection(t_s, b.tip, "the needle is in to the hub")
            s = min(d_mm, SUB_STEP_MM, ahead)
            b.tip = b.tip + b.axis * s
            b.inserted += s
            d_mm -= s
            if b.back_out_of_bone():
                return self._bone(t_s)
        return []

    def _miss(self) -> float:
        return float(np.linalg.norm(self.body.tip - self.plan.target_mm))

    def _bone(self, t_s: float) -> list[LiveEvent]:
        b = self.body
        name = self.patient.tissue_name_at(b.tip + b.axis)
        left = self._miss()
        if self.proc.bony_endpoint and left <= self.proc.tolerance_mm + BONY_SLACK_MM:
            return self._start_injection(t_s, b.tip, f"bone contact on {name}: the target "
                                         f"bone ({left:.1f} mm from the target)")
        if self.walkoffs >= MAX_WALKOFF:
            return self._start_injection(t_s, b.tip, f"the needle rests on {name}, "
                                         f"{left:.0f} mm from the target")
        self.walkoffs += 1
        self.passes += 1
        b.withdraw(WALKOFF_MM)
        k = (1.0, -2.0, 3.0)[self.walkoffs - 1] * WALKOFF_DEG
        b.steer(b.axis + np.tan(np.radians(k)) * self.across, abs(k))
        return [LiveEvent(t_s, "pass", f"pass {self.passes}: bone contact ({name}) at "
                          f"{b.inserted + WALKOFF_MM:.0f} mm; withdrawn {WALKOFF_MM:g} mm "
                          f"and re-angled {k:+.0f} deg")]

    # ---- confirmation ----------------------------------------------------------------------
    def _duration(self) -> float:
        end = START_S + TEST_ML / RATE_ML_S
        return end + (1e-6 if self.modality == "fluoro" else 0.5)

    def _start_injection(self, t_s: float, tip, why: str | None = None) -> list[LiveEvent]:
        ev = [LiveEvent(t_s, "info", why)] if why else []
        self.phase = "inject"
        self.attempt += 1
        self.t_inject = float(t_s)
        self.frames = []
        fl = self.modality == "fluoro"
        kw = dict(agent="contrast", concentration_mg_ml=300) if fl else \
            dict(agent="local_anaesthetic")
        self.injectate = Shifted(self._submit(self._build_injectate, np.asarray(tip, float),
                                              make_injection(volume_ml=TEST_ML,
                                                             rate_ml_s=RATE_ML_S,
                                                             start_s=START_S, **kw)), t_s)
        self._error_told = False
        if fl and self.view.view != self.view.confirm_view:
            self.view.use(self.view.confirm_view)
            ev.append(LiveEvent(t_s, "info", f"C-arm to the {self.view.confirm_view} view "
                                "for the test dose"))
        what = "contrast (300 mg I/mL)" if fl else "local anaesthetic"
        ev.append(LiveEvent(t_s, "contrast", f"test dose {self.attempt}: {TEST_ML:g} mL of "
                            f"{what} at {RATE_ML_S:g} mL/s from {START_S:g} s"))
        return ev

    def _build_injectate(self, tip: np.ndarray, injection) -> Injectate:
        inj = Injectate(self.patient, seed=self.seed).inject(tip, injection)
        inj.models()  # the spread models (the costly part) before the inflow
        return inj

    def observe(self, frame: Frame, tip_px) -> None:
        """A frame shown during the injection (without truth) and the analyser's tip
        pixel (or None)."""
        if self.phase != "inject":
            return
        if self.modality == "fluoro" or not self.frames:
            self.frames.append(frame)
        else:
            self.frames[1:] = [frame]  # US reads the first and the last frame
        if self.modality == "us" and tip_px is not None:
            self.spread_center_px = tip_px

    def _read_injection(self, t_s: float) -> list[LiveEvent]:
        if self.modality == "us":
            ev = self._read_us(t_s)
        else:
            ev = self._read_fluoro(t_s)
        return ev if self.phase != "inject" else ev + self._finish(t_s)

    def _finish(self, t_s: float) -> list[LiveEvent]:
        self.phase = "done"
        return [LiveEvent(t_s, "done", "procedure ended after the test dose")]

    def _read_us(self, t_s: float) -> list[LiveEvent]:
        if len(self.frames) < 2:
            return [LiveEvent(t_s, "info", "too few frames during the injection to judge "
                              "the spread")]
        pre, post = self.frames[0], self.frames[-1]
        c = self.spread_center_px or us_target_px(post, self.tip_guess())
        area = visible_spread(pre.pixels, post.pixels, c, float(post.spacing_mm[0]))
        seen = area >= 5.0
        return [LiveEvent(t_s, "info", f"spread {'visible' if seen else 'NOT visible'}: "
                          f"{area:.0f} mm2 of echo change around the tip")]

    def _read_fluoro(self, t_s: float) -> list[LiveEvent]:
        start = self.t_inject + START_S
        n_mask = sum(1 for f in self.frames if f.time_s < start)
        frames, self.frames = self.frames, []
        if n_mask < 1 or len(frames) - n_mask < 2:
            return [LiveEvent(t_s, "info", f"too few frames ({len(frames)}) for the "
                              "contrast classifier: tick faster")]
        self.phase = "reading"
        self._reading = self._submit(classify_sequence, frames, "live", n_mask)
        return []

    def _contrast_result(self, t_s: float, res) -> list[LiveEvent]:
        self._reading = None
        ev = [LiveEvent(t_s, "info", f"contrast classifier: {res.label.replace('_', ' ')} "
                        f"(confidence {res.confidence:.2f})")]
        if res.alarm_time_s is None and not res.intravascular:
            return ev + self._finish(t_s)
        at = "" if res.alarm_time_s is None else \
            f" at {res.alarm_time_s - self.t_inject:.1f} s of the test dose"
        ev.append(LiveEvent(t_s, "alarm", f"INTRAVASCULAR ALARM{at}"))
        if self.attempt == 1 and self.body is not None:
            self.body.withdraw(WITHDRAW_ON_ALARM_MM)
            ev.append(LiveEvent(t_s, "info", f"withdrawn {WITHDRAW_ON_ALARM_MM:g} mm; the "
                                "test is repeated"))
            return ev + self._start_injection(t_s, self.body.tip)
        self.phase = "done"
        return ev + [LiveEvent(t_s, "done", "injection aborted: intravascular alarm")]
