"""``LiveSession``: one simulated procedure run in real time, frame by frame, driven from
outside (tracker transforms) or by the virtual operator (``live/autopilot.py``).

Built from the session engine: the phantom, the procedure's target, the operator's plan
and imaging (``Operator.create``: US view and probe pose, or C-arm views and fluoroscope),
the engine's needle (``Body``) and the confirmation of ``session/confirm.py``. Every tick
renders the scene as it stands at ``t_s`` and runs the needle analyser
(``NeedleTracker``, whose prior is the track's prediction, else the planned shaft while
the virtual operator drives) on the frame without truth.

Thread safety: :meth:`LiveSession.set_transform` and :meth:`LiveSession.inject` may be
called from any thread; they only queue; the next :meth:`tick` applies them. Ticks are
serialised.
"""

from __future__ import annotations

import threading

import numpy as np

from needleguide.frame import Frame
from needleguide.guidance.needle import NeedleDetection
from needleguide.guidance.tracking import NeedleTracker
from needleguide.live.autopilot import Autopilot
from needleguide.live.config import LiveConfig, LiveEvent, LiveFrame
from needleguide.live.poses import check_pose, needle_from_pose, needle_pose
from needleguide.live.views import FluoroView, USView
from needleguide.scene import Needle, Scene

TRANSFORM_NAMES = {"us": ("ProbeToReference", "NeedleToReference"),
                   "fluoro": ("NeedleToReference",)}


class _PlanTracker(NeedleTracker):
    """The tracker, with a fallback prior (the planned shaft) while it holds no track."""

    fallback: NeedleDetection | None = None

    def _prior(self) -> NeedleDetection | None:
        return super()._prior() or self.fallback


class LiveSession:
    """One running procedure. ``patient``: the anatomy (RAS mm; Reference = patient RAS);
    ``modality``: "us" | "fluoro"; ``plan``: the needle plan (entry, target, axis);
    ``done``: the procedure has ended (the scene then stays as it stands: later ticks
    render it, transforms still move the probe and the needle)."""

    def __init__(self, cfg: LiveConfig):
        from needleguide.anatomy.phantom import build_phantom
        from needleguide.procedures import get_procedure
        from needleguide.session.operator import Operator

        self.cfg = cfg
        scfg = cfg.session_config()
        proc = get_procedure(cfg.procedure)
        level = proc.resolve_level(cfg.level)
        side = proc.resolve_side(cfg.side) or "right"
        self.target_name = proc.target_names(level, side)[0]
        self.patient = build_phantom(proc.phantom_region, bmi=float(cfg.bmi),
                                     degeneration=scfg.degeneration, seed=int(cfg.seed),
                                     spacing_mm=scfg.phantom_spacing_mm)
        self.target_mm = self.patient.landmark(self.target_name)
        op = Operator.create(scfg, proc, self.patient, self.target_mm, level, side)
        self.modality: str = cfg.modality
        self.plan = op.plan
        self.view: USView | FluoroView = USView(op, cfg.pixels, int(cfg.seed)) \
            if cfg.modality == "us" else FluoroView(op)
        self.gauge = int(proc.needle.gauge)
        self.pilot = Autopilot(self.patient, op.plan, proc, self.target_name, self.gauge,
                               op.across(), self.view, cfg.modality, int(cfg.seed),
                               float(cfg.advance_mm_s), bool(cfg.auto))
        self.tracker = _PlanTracker()
        self._scene = Scene(self.patient)
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._pending: dict[str, np.ndarray] = {}
        self._inject = False
        self._external: tuple[np.ndarray, Needle] | None = None
        self._t: float | None = None
        self._seq = 0

    @property
    def done(self) -> bool:
        return self.pilot.phase == "done"

    @property
    def t_s(self) -> float | None:
        """The session clock (s) of the last tick; None before the first."""
        return self._t

    # ---- input (any thread) -------------------------------------------------------------
    def set_transform(self, name: str, matrix: np.ndarray) -> None:
        """Queue a pose (4x4, Reference = patient RAS mm) for the next tick.

        "ProbeToReference" (US): the probe (the imager's ProbeToPatient: x lateral along
        the array, y into the body along the beam, z elevation); "NeedleToReference": the
        needle (origin at the tip, +z along the shaft toward the hub); the first one takes
        the needle from the virtual operator. Other names, a pose the modality has no use
        for, or a matrix that is not a finite rigid 4x4 raise ``ValueError``."""
        allowed = TRANSFORM_NAMES[self.modality]
        if name not in allowed:
            raise ValueError(f"transform name: {name!r}; a {self.modality} session accepts "
                             f"{', '.join(allowed)}")
        m = check_pose(name, matrix)
        with self._lock:
            self._pending[name] = m

    def inject(self) -> None:
        """Queue a test dose at the current needle tip (the needle driven from outside,
        or after the virtual operator is done); the next tick starts it."""
        with self._lock:
            self._inject = True

    def close(self) -> None:
        """Stop the background worker (injectate spread, contrast classifier)."""
        self.pilot.close()

    # ---- clock ------------------------------------------------------------------------------
    def tick(self, t_s: float) -> LiveFrame:
        """Advance the simulated time to ``t_s`` (s, not before the previous tick's),
        apply queued transforms, let the virtual operator act, render and analyse."""
        t_s = float(t_s)
        if not np.isfinite(t_s) or (self._t is not None and t_s < self._t):
            raise ValueError(f"t_s: {t_s} s; time must be finite and not go backwards "
                             f"(last tick {self._t} s)")
        with self._tick_lock:
            return self._tick(t_s)

    def _tick(self, t_s: float) -> LiveFrame:
        with self._lock:
            pending, self._pending = self._pending, {}
            inject, self._inject = self._inject, False
        self._t = t_s
        events: list[LiveEvent] = []
        if "ProbeToReference" in pending:
            self.view.set_probe(pending["ProbeToReference"])
        if "NeedleToReference" in pending:
            events += self.pilot.hand_over(t_s)
            m = pending["NeedleToReference"]
            if self._external is None or not np.array_equal(self._external[0], m):
                self._external = (m, needle_from_pose(self.patient, m, self.gauge,
                                                      self.plan.needle_length_mm))
        needle = self._external[1] if self._external is not None else self.pilot.needle
        if inject:
            if needle is None:
                events.append(LiveEvent(t_s, "info", "no needle to inject through"))
            elif self.pilot.phase not in ("manual", "done"):
                events.append(LiveEvent(t_s, "info", "injection request ignored: the "
                                        f"virtual operator is at '{self.pilot.phase}'"))
            else:
                self.pilot.request_injection(needle.tip)
        events += self.pilot.step(t_s)
        if self._external is None:
            needle = self.pilot.needle  # the operator may have moved it
        scene = Scene(self.patient, needle, self.pilot.injectate, {}, t_s)
        frame = self.view.render(scene).without_truth()
        det, tip_pose = self._analyse(frame)
        self.pilot.observe(frame, det.tip_px if det.found else None)
        transforms = self.view.transforms()
        if needle is not None:
            npose = needle_pose(needle) if self._external is None else self._external[0]
            transforms["NeedleToReference"] = npose
            transforms["NeedleTipToReference"] = npose.copy()
        sr, sc = frame.spacing_mm
        i2r = np.asarray(frame.ImageToPatient, float) @ np.diag([sc, sr, 1.0, 1.0])
        out = LiveFrame(t_s, frame, self._seq, i2r, transforms, tip_pose, events,
                        dict(self.view.meta))
        self._seq += 1
        return out

    def _analyse(self, frame: Frame) -> tuple[NeedleDetection, np.ndarray | None]:
        """The tracker on the new frame (prior: the track, else the planned shaft while
        the virtual operator drives); the detected tip as a needle-frame pose."""
        guess = self.pilot.tip_guess()
        self.tracker.fallback = self.view.prior(frame, guess) \
            if self.pilot.body is not None else None
        det = self.tracker.update(frame)
        if not det.found or det.tip_px is None or det.shaft_px is None:
            return det, None
        return det, self.view.tip_pose(frame, det, guess)


__all__ = ["LiveConfig", "LiveEvent", "LiveFrame", "LiveSession"]
