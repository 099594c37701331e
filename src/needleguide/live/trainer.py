"""``TrainerSession``: one procedure done by hand by a trainee, frame by frame — the core
of the browser trainer (issue 20), driven by the web server.

Built from the session engine like ``LiveSession`` (no second engine): the phantom, the
target, the operator's plan and imaging (``Operator.create``; ``live.views.USView`` /
``FluoroView``), the engine's needle (``Body``, ``score_tissue``), the confirmation of
``session/confirm.py`` and the scoring of ``session/scoring.py``. The parts:
``trainer_commands`` (validation), ``trainer_probe`` (US probe and scanner),
``trainer_carm`` (C-arm, pedal, spots, DSA, level labels), ``trainer_needle``,
``trainer_analyser`` (the needle analyser), ``trainer_inject`` (test doses),
``trainer_overlay`` (what the trainee sees), ``trainer_result`` (``finish``).

Threads: :meth:`command`, :meth:`state`, :meth:`finish` may be called from any thread;
commands are validated at once and queued; :meth:`tick` applies them in order, then
renders. Ticks are serialised. The injectate's spread model and the contrast classifier
run on one worker thread.
"""

from __future__ import annotations

import copy
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from needleguide.errors import UserError
from needleguide.frame import Dose, Frame
from needleguide.live.trainer_analyser import NeedleAnalyser
from needleguide.live.trainer_carm import CArmControl, pose_key
from needleguide.live.trainer_commands import Command, Context, check_state, predict, validate
from needleguide.live.trainer_config import TrainerConfig, TrainerFrame, TrainerLog
from needleguide.live.trainer_inject import TestDose
from needleguide.live.trainer_needle import NeedleControl, skin_on_ray
from needleguide.live.trainer_overlay import compose
from needleguide.live.trainer_probe import ProbeControl
from needleguide.live.trainer_result import trainer_result
from needleguide.live.views import FluoroView, USView
from needleguide.scene import Scene

MAX_KEY_FRAMES = 12


class TrainerSession:
    """One trainer session (``cfg``: :class:`TrainerConfig`); building it takes seconds
    (phantom, plan, imager; FL: the working and confirmation poses projected)."""

    def __init__(self, cfg: TrainerConfig):
        from needleguide.anatomy.phantom import build_phantom
        from needleguide.procedures import get_procedure
        from needleguide.session.operator import Operator

        if not isinstance(cfg, TrainerConfig):
            raise UserError(f"config: expected a TrainerConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        scfg = cfg.session_config()
        self.proc = proc = get_procedure(cfg.procedure)
        self.level = proc.resolve_level(cfg.level)
        self.side = proc.resolve_side(cfg.side)  # None for a midline procedure
        side = self.side or "right"
        self.target_name = proc.target_names(self.level, self.side)[0]
        self.patient = build_phantom(proc.phantom_region, bmi=float(cfg.bmi),
                                     degeneration=scfg.degeneration, seed=int(cfg.seed),
                                     spacing_mm=scfg.phantom_spacing_mm)
        self.target_mm = self.patient.landmark(self.target_name)
        op = Operator.create(scfg, proc, self.patient, self.target_mm, self.level, side)
        self.modality: str = cfg.modality
        self.plan, self._views = op.plan, op.view_names
        self.log = TrainerLog()
        self.probe: ProbeControl | None = None
        self.carm: CArmControl | None = None
        if self.modality == "us":
            self.view: USView | FluoroView = USView(op, cfg.pixels, int(cfg.seed))
            self.probe = ProbeControl(self.view, self.patient)
        else:
            self.view = FluoroView(op)
            self.carm = CArmControl(self.view)
        self.needle = NeedleControl(self.patient, op.plan, proc, self.target_mm,
                                    self.target_name, self.modality, int(cfg.seed), self.log)
        self._pool: ThreadPoolExecutor | None = None
        self.doses = TestDose(self.patient, int(cfg.seed), self.modality, self._submit,
                              self.log)
        self._key_frames: list[tuple[str, np.ndarray]] = []
        self.doses.key_frames = self._key_frames
        self.analyser = NeedleAnalyser(self.needle, proc.us.view)
        self.overlays = {"tip": True, "shaft": True, "levels": False, "alarm": True}
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._queue: list[Command] = []
        self._t: float | None = None
        self._seq = 0
        self._ack = 0
        self._repaint = True  # the first tick shows the screen
        self._shown: Frame | None = None  # the last image shown (without truth)
        self._shown_carm = None
        self._det = None  # the needle analyser's result on it
        self._last_rgb: np.ndarray | None = None
        self._first_needle = False
        self._shots = 0
        self._result = None
        self._closed = False
        with self._lock:
            self._ctx = self._context()
            self._state = self._snapshot()

    # ---- any thread -------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._result is not None

    def command(self, cmd: dict) -> None:
        """Validate ``cmd`` now (``UserError`` naming the field) and queue it for the next
        tick."""
        with self._lock:
            if self._closed:
                raise UserError("op: the session is closed")
            c = validate(cmd, self._ctx)
            predict(self._ctx, c)
            self._queue.append(c)

    def state(self) -> dict[str, Any]:
        """The session as of the last tick (JSON-able; keys fixed by the spec)."""
        with self._lock:
            return copy.deepcopy(self._state)

    def finish(self):
        """End the session now (if a command or an earlier call has not) and return its
        :class:`~needleguide.session.models.SessionResult`, scored like ``simulate``."""
        with self._tick_lock:
            if self._result is None:
                self._finish(self._t or 0.0)
                with self._lock:
                    self._ctx = self._context()
                    self._state = self._snapshot()
            return self._result

    def close(self) -> None:
        """Stop the worker thread (work under way finishes) and close any open run; later
        ticks return None and commands are refused."""
        self._closed = True
        if self.carm is not None:
            self.carm.close_run()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # ---- clock ------------------------------------------------------------------------------
    def tick(self, t_s: float) -> TrainerFrame | None:
        """Advance the session clock to ``t_s`` (s, never backwards): apply the queued
        commands, advance a test dose, render if a frame is due (US: every tick; FL:
        pedal pulses, a spot, a DSA frame, a live test dose), else the held image once
        after a change, else None."""
        if isinstance(t_s, bool) or not isinstance(t_s, (int, float)) or \
                not math.isfinite(t_s) or (self._t is not None and t_s < self._t):
            raise UserError(f"t_s: {t_s!r} s; the clock must be a finite number that does "
                            f"not go backwards (last tick {self._t} s)")
        with self._tick_lock:
            if self._closed:
                return None
            if self._result is not None:
                return self._held(self._t) if self._repaint or self.log.pending else None
            out = self._tick(float(t_s))
            with self._lock:
                self._ctx = self._context()
                for c in self._queue:  # queued while this tick ran
                    predict(self._ctx, c)
                self._state = self._snapshot()
            return out

    def _tick(self, t: float) -> TrainerFrame | None:
        self._t = t
        with self._lock:
            queue, self._queue = self._queue, []
        for c in queue:
            try:
                check_state(c.op, self._context())
                self._apply(t, c)
            except UserError as e:
                self.log.tell(t, "refused", str(e))
            if c.id is not None:
                self._ack = max(self._ack, c.id)
            self._repaint = True
            if self._result is not None:
                return self._held(t)
        tip_px = self._det.tip_px if self._det is not None and self._det.found else None
        if self.doses.step(t, tip_px, self.needle.guess()):
            self._repaint = True
        if self.carm is not None and not self.doses.flowing:
            self.carm.close_run()
        raw = self._expose(t)
        if raw is None:
            return self._held(t) if self._repaint or self.log.pending else None
        return self._show(raw)

    def _scene(self, t: float) -> Scene:
        return Scene(self.patient, self.needle.needle(), self.doses.injectate, {}, t)

    def _expose(self, t: float) -> Frame | None:
        """The frame due at ``t`` (with truth), or None (FL: nothing due)."""
        if self.carm is None:
            self._shots += 1
            return self.view.render(self._scene(t))
        frame, n = self.carm.due(t, lambda: self._scene(t), self.doses)
        self._shots += n
        return frame

    def _show(self, raw: Frame) -> TrainerFrame:
        frame = raw.without_truth()
        self.doses.observe(frame)
        self._shown = frame
        self._shown_carm = None if self.carm is None else self.carm.carm
        self._det = self.analyser.update(frame, self._shown_carm)
        out = self._frame(frame, float(raw.time_s))
        if self._first_needle and self.needle.in_body:
            self._first_needle = False
            self._key(f"pass {self.needle.passes}: the needle's first frame")
        return out

    def _held(self, t: float) -> TrainerFrame:
        """The screen repainted without a new image (FL: last-image hold, no dose; US, and
        after the end: the last image)."""
        if self.carm is not None:
            frame = CArmControl.hold(self._shown, t, self._shown_carm or self.carm.carm)
        elif self._shown is not None:
            frame = self._shown
        else:
            frame = self.view.render(self._scene(t)).without_truth()
        return self._frame(frame, t)

    def _frame(self, frame: Frame, t: float) -> TrainerFrame:
        fl = self.carm is not None
        carm = self._shown_carm if fl else None
        levels = contrast = None
        if fl and self.overlays["levels"] and self._shown is not None and carm is not None:
            levels = self.carm.levels(self._shown, carm)
        if fl and carm is not None and self.doses.result_pose == pose_key(carm):
            contrast = self.doses.result
        note = None
        if self.doses.spread_mm2 is not None:
            note = f"last test injection: spread {self.doses.spread_mm2:.0f} mm2"
        rgb = compose(frame, self.overlays, self._det, levels, contrast, self.doses.alarm,
                      note)
        self._last_rgb = rgb
        out = TrainerFrame(self._seq, float(t), rgb, self._ack,
                           self.log.take_new(), frame)
        self._seq += 1
        self._repaint = False
        return out

    # ---- commands ---------------------------------------------------------------------------
    def _apply(self, t: float, c: Command) -> None:
        a, op = c.args, c.op
        if op == "probe":
            self.probe.move(**a)
        elif op == "probe_reset":
            self.probe.reset()
        elif op == "us":
            self.probe.set_scanner(**a)
        elif op == "carm":
            self.carm.set_angles(a.get("orbit_deg"), a.get("tilt_deg"))
        elif op == "view":
            self.carm.use(a["name"])
        elif op == "pedal":
            self.carm.set_pedal(a["down"])
        elif op == "spot":
            self.carm.spots_due += 1
        elif op == "entry":
            self.needle.set_entry(t, self._entry_point(a["px"]))
        elif op == "insert":
            self.needle.insert(t)
            self.doses.alarm = False
            self._first_needle = self.needle.passes == 1
        elif op == "advance":
            self.needle.advance(t, a["mm"], self._dose())
        elif op == "withdraw":
            self.needle.withdraw(t, a["mm"], self._dose())
        elif op == "steer":
            self.needle.steer(a["inplane_deg"], a["outplane_deg"], self._lateral())
        elif op == "inject":
            self._inject(t, a["dsa"])
        elif op == "overlays":
            self.overlays.update(a)
        elif op == "finish":
            self._finish(t)

    def _dose(self) -> Dose:
        return self.carm.fl.dose_total if self.carm is not None else Dose()

    def _lateral(self) -> np.ndarray:
        """The image's column direction in the patient (steering's in-plane side)."""
        if self.carm is None:
            return np.asarray(self.view.probe_to_patient, float)[:3, 0]
        return self.carm.carm.axes[0]

    def _entry_point(self, px) -> np.ndarray:
        c, r = px
        if self.carm is None:
            frame = self._shown if self._shown is not None else \
                self.view.render(self._scene(self._t or 0.0))
            point = self.probe.entry_at(frame.pixel_to_patient(c, r))
        else:
            carm = self._shown_carm or self.carm.carm
            pix = carm.geometry.pixel_mm
            det = carm.ImageToPatient @ np.array([c * pix, r * pix, 0.0, 1.0])
            src = np.asarray(carm.source_mm, float)
            point = skin_on_ray(self.patient, src, det[:3] - src, self.plan.entry_mm)
        if point is None:
            raise UserError(f"px: no skin at [{c:.0f}, {r:.0f}] for a needle entry; pick a "
                            "point over the body")
        return point

    def _inject(self, t: float, dsa: bool) -> None:
        nd = self.needle
        self._key(f"end of the advance, before test dose {self.doses.count + 1}: "
                  f"{nd.inserted_mm:.0f} mm inserted, pass {nd.passes}")
        pose = None
        if self.carm is not None:
            pose = pose_key(self.carm.carm)
            self.carm.open_run(f"contrast test dose ({'DSA' if dsa else 'live fluoroscopy'})",
                               t)
        self.doses.start(t, nd.body.tip, dsa, pose)

    def _submit(self, fn, *args):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainer")
        return self._pool.submit(fn, *args)

    def _key(self, title: str) -> None:
        if self._last_rgb is not None and len(self._key_frames) < MAX_KEY_FRAMES:
            self._key_frames.append((title, self._last_rgb))

    # ---- the end ----------------------------------------------------------------------------
    def _finish(self, t: float) -> None:
        tip_px = self._det.tip_px if self._det is not None and self._det.found else None
        self.doses.settle(t, tip_px, self.needle.guess())
        if self.carm is not None:
            self.carm.close_run()
            self.carm.set_pedal(False)
        self._key(f"end of the session: {self.needle.inserted_mm:.0f} mm inserted, pass "
                  f"{self.needle.passes}")
        fl = self.carm is not None
        self._result = trainer_result(
            cfg=self.cfg, proc=self.proc, plan=self.plan, target_name=self.target_name,
            target_mm=self.target_mm, level=self.level, side=self.side or "right",
            views=self._views, needle=self.needle, doses=self.doses, log=self.log,
            clock_s=t, dose=self._dose(), shots=self._shots, analyser=self.analyser.counts,
            key_frames=self._key_frames,
            dose_events=list(self.carm.fl.events) if fl else [])
        m = self._result.metrics
        self.log.tell(t, "done", f"session finished: tip {m['final_tip_error_mm']:.1f} mm "
                      f"from the target (tolerance {m['tolerance_mm']:g} mm), "
                      f"{'success' if m['success'] else 'not successful'}")
        self._repaint = True

    # ---- state -----------------------------------------------------------------------------
    def _phase(self) -> str:
        if self._result is not None:
            return "done"
        p = self.doses.state_phase()
        if p is not None:
            return p
        if self.needle.in_body:
            return "in_body"
        return "needle_out" if self.needle.passes else "ready"

    def _context(self) -> Context:
        n = int(self.cfg.pixels)
        return Context(
            modality=self.modality,
            views=tuple(self.carm.named) if self.carm is not None else (),
            us_ranges=dict(self.probe.ranges) if self.probe is not None else {},
            pose=self.probe.pose if self.probe is not None else (0.0, 0.0, 0.0, 0.0),
            in_body=self.needle.in_body, inserted_mm=self.needle.inserted_mm,
            entry_set=self.needle.entry is not None, injecting=self.doses.flowing,
            reading=self.doses.reading, finished=self._result is not None, image_px=(n, n))

    def _snapshot(self) -> dict[str, Any]:
        return {"modality": self.modality, "procedure": self.cfg.procedure,
                "procedure_name": self.proc.name, "level": self.level, "side": self.side,
                "target": self.target_name, "clock_s": round(float(self._t or 0.0), 3),
                "finished": self._result is not None, "phase": self._phase(),
                "us": self.probe.state() if self.probe is not None else None,
                "fluoro": self.carm.state() if self.carm is not None else None,
                "needle": self.needle.state(), "overlays": dict(self.overlays),
                "alarm": bool(self.doses.alarm), "events": self.log.last(50)}


__all__ = ["TrainerConfig", "TrainerFrame", "TrainerSession"]
