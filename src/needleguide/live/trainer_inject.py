"""The trainee's test dose (``session/confirm.py`` constants: 1 mL at 0.5 mL/s), given
frame by frame as in ``live/autopilot.py`` (the injectate built on the worker thread,
``Shifted`` on the session clock, the flow starting ``START_S`` into the dose).

Fluoroscopy: 300 mg I/mL contrast under live pulsed fluoroscopy (pulses for the whole
dose, pedal or not) or as a DSA run (``DSA_FPS``; the first frame is the mask); at the end
of the inflow the frames shown go to ``guidance.contrast.classify_sequence`` on the
worker thread ("reading"); an intravascular call raises the alarm. The trainee decides
what to do after it (nothing is withdrawn or aborted for them). Ultrasound: local
anaesthetic; the spread is read by ``session.confirm.visible_spread`` between the first
and the last frame.

Scoring (truth, as ``session/confirm.py``): the compartment at the tip when the dose
starts; an intravascular dose is an ``intravascular_injection`` event, detected when the
alarm fired (ultrasound: never), an intrathecal one ``intrathecal_injection``, an alarm
without a vessel ``false_alarm``, an unseen US spread ``spread_not_seen``.
"""

from __future__ import annotations

import numpy as np

from needleguide.errors import UserError
from needleguide.guidance.contrast import classify_sequence
from needleguide.guidance.contrast_draw import draw_contrast
from needleguide.guidance.overlay import draw_text, to_rgb8
from needleguide.live.autopilot import START_S, Shifted
from needleguide.scene.injectate import Injectate, make_injection
from needleguide.session.confirm import (
    RATE_ML_S,
    SPREAD_MIN_MM2,
    TEST_ML,
    in_words,
    true_compartment,
    visible_spread,
)
from needleguide.session.imaging import us_target_px
from needleguide.session.models import Event

US_READ_AFTER_S = 0.5  # the US spread is read this long after the inflow ends


class TestDose:
    """Test doses of one session (one at a time). ``submit(fn, *args) -> Future`` runs on
    the session's worker thread; ``log``: the session's ``TrainerLog``."""

    __test__ = False  # not a pytest class

    def __init__(self, patient, seed: int, modality: str, submit, log):
        self.patient, self.seed, self.modality = patient, int(seed), modality
        self.submit, self.log = submit, log
        self.count = 0
        self.contrast_ml = 0.0
        self.confirm_info: dict = {}
        self.key_frames: list[tuple[str, np.ndarray]] = []
        self.injectate: Shifted | None = None  # the latest dose (stays in the scene)
        self.alarm = False
        self.result = None  # the last contrast classifier result
        self.result_pose: tuple | None = None
        self.spread_mm2: float | None = None
        self.tested_tip: np.ndarray | None = None
        self.dsa = False
        self.dsa_used = False
        self._t0 = 0.0
        self._tip: np.ndarray | None = None
        self._truth: tuple[str, float] = ("none", 0.0)
        self._frames: list = []
        self._flowing = False
        self._reading = None  # Future of the classifier
        self._pose: tuple | None = None
        self._error_told = False

    # ---- phases --------------------------------------------------------------------------
    @property
    def flowing(self) -> bool:
        """The dose is being given (frames are collected)."""
        return self._flowing

    @property
    def reading(self) -> bool:
        return self._reading is not None

    @property
    def end_s(self) -> float:
        """Session time at which the inflow is over and the dose is read."""
        end = self._t0 + START_S + TEST_ML / RATE_ML_S
        return end + (1e-6 if self.modality == "fluoro" else US_READ_AFTER_S)

    @property
    def t0_s(self) -> float:
        return self._t0

    def start(self, t_s: float, tip_mm, dsa: bool = False, pose: tuple | None = None) -> None:
        """A 1 mL test dose at ``tip_mm`` from ``t_s`` (``dsa``: as a DSA run)."""
        fl = self.modality == "fluoro"
        self.count += 1
        self._t0, self._tip = float(t_s), np.asarray(tip_mm, float).copy()
        self.tested_tip = self._tip.copy()
        self._truth = true_compartment(self.patient, self._tip)
        self._frames, self._flowing, self._pose = [], True, pose
        self.dsa = bool(dsa and fl)
        self.dsa_used |= self.dsa
        self.alarm, self._error_told = False, False
        kw = dict(agent="contrast", concentration_mg_ml=300) if fl else \
            dict(agent="local_anaesthetic")
        inj = make_injection(volume_ml=TEST_ML, rate_ml_s=RATE_ML_S, start_s=START_S, **kw)
        self.injectate = Shifted(self.submit(self._build, self._tip, inj), t_s)
        if fl:
            self.contrast_ml += TEST_ML
        what = ("contrast (300 mg I/mL), " + ("DSA run" if self.dsa else
                                              "live fluoroscopy")) if fl else \
            "local anaesthetic, live ultrasound"
        self.log.tell(t_s, "contrast", f"test dose {self.count}: {TEST_ML:g} mL at "
                      f"{RATE_ML_S:g} mL/s from {START_S:g} s ({what})")

    def _build(self, tip: np.ndarray, injection) -> Injectate:
        try:
            inj = Injectate(self.patient, seed=self.seed).inject(tip, injection)
            inj.models()  # the spread models (the costly part) before the inflow
        except UserError:
            raise
        except Exception as e:  # the spread model failed: said once, the session goes on
            raise UserError(f"injectate: {e}") from e
        return inj

    def observe(self, frame) -> None:
        """A frame shown during the dose (without truth)."""
        if not self._flowing:
            return
        if self.modality == "fluoro" or not self._frames:
            self._frames.append(frame)
        else:
            self._frames[1:] = [frame]  # US reads the first and the last frame

    def step(self, t_s: float, tip_px=None, guess_mm=None) -> bool:
        """Advance to ``t_s``: end the inflow and read it (US at once; FL: the classifier
        on the worker thread), take the classifier's result; ``tip_px``: the needle
        analyser's tip on the last US frame (the spread's centre; else ``guess_mm``
        projected). True when something changed."""
        inj = self.injectate
        changed = False
        if inj is not None and inj.error and not self._error_told:
            self._error_told = True
            self.log.tell(t_s, "info", f"no injectate spread: {inj.error}")
            changed = True
        if self._flowing and t_s >= self.end_s:
            self._flowing = False
            if self.modality == "us":
                self._read_us(t_s, tip_px, guess_mm)
            else:
                self._read_fluoro(t_s)
            changed = True
        if self._reading is not None and self._reading.done():
            self._take_reading(t_s)
            changed = True
        return changed

    def _take_reading(self, t_s: float) -> None:
        fut, self._reading = self._reading, None
        try:
            res = fut.result()
        except Exception as e:  # (cancelled at close, or the classifier failed)
            self.log.tell(t_s, "info", f"the contrast classifier gave no result ({e!r})")
            return
        self._contrast_result(t_s, res)

    def settle(self, t_s: float, tip_px=None, guess_mm=None) -> None:
        """Finish whatever dose is under way (the session ends): read a dose still
        flowing with the frames so far, wait for the classifier."""
        if self._flowing:
            self._flowing = False
            if self.modality == "us":
                self._read_us(t_s, tip_px, guess_mm)
            else:
                self._read_fluoro(t_s)
        if self._reading is not None:
            self._take_reading(t_s)

    # ---- reading ---------------------------------------------------------------------------
    def _read_us(self, t_s: float, tip_px, guess_mm) -> None:
        comp, vasc = self._truth
        if len(self._frames) < 2:
            self.log.tell(t_s, "info", "too few frames during the injection to judge the "
                          "spread")
            return
        pre, post = self._frames[0], self._frames[-1]
        c = tip_px if tip_px is not None else us_target_px(post, guess_mm)
        area = visible_spread(pre.pixels, post.pixels, c, float(post.spacing_mm[0]))
        seen = area >= SPREAD_MIN_MM2
        self.spread_mm2 = area
        self.log.tell(t_s, "info", f"spread {'visible' if seen else 'NOT visible'}: "
                      f"{area:.0f} mm2 of echo change around the tip")
        img = to_rgb8(post.pixels)
        draw_text(img, f"spread {'visible' if seen else 'NOT visible'}: {area:.0f} mm2")
        self.key_frames.append((f"test injection {self.count}: spread "
                                f"{'visible' if seen else 'not visible'} ({area:.0f} mm²); "
                                f"truth {in_words(comp)}", img))
        self.confirm_info[f"test_{self.count}"] = {
            "mode": "us", "spread_mm2": round(area, 1), "visible": bool(seen),
            "true_compartment": comp, "true_vascular_share": round(vasc, 3)}
        if vasc >= 0.5:
            self.log.score(Event(t_s, "intravascular_injection", False, "not detectable "
                                 "under ultrasound (intravascular fluid is not seen)"))
        elif not seen:
            self.log.score(Event(t_s, "spread_not_seen", True, f"truth {in_words(comp)}"))

    def _read_fluoro(self, t_s: float) -> None:
        frames, self._frames = self._frames, []
        if self.dsa:
            mode, n_mask = "dsa", 3
            enough = len(frames) >= 3
        else:
            mode = "live"
            n_mask = sum(1 for f in frames if f.time_s < self._t0 + START_S)
            enough = n_mask >= 1 and len(frames) - n_mask >= 2
        if not enough:
            self.log.tell(t_s, "info", f"too few frames ({len(frames)}) for the contrast "
                          "classifier")
            return
        self._mode, self._shown = mode, frames
        self._reading = self.submit(classify_sequence, frames, mode, n_mask)

    def _contrast_result(self, t_s: float, res) -> None:
        comp, vasc = self._truth
        frames, mode = self._shown, self._mode
        alarm = res.alarm_time_s is not None or res.intravascular
        self.result, self.result_pose, self.alarm = res, self._pose, bool(alarm)
        self.log.tell(t_s, "info", f"contrast classifier: {in_words(res.label)} (confidence "
                      f"{res.confidence:.2f})")
        if alarm:
            at = "" if res.alarm_time_s is None else \
                f" at {res.alarm_time_s - self._t0:.1f} s of the test dose"
            self.log.tell(t_s, "alarm", f"INTRAVASCULAR ALARM{at}")
        peak = frames[int(np.argmin([abs(f.time_s - self._t0 - START_S - TEST_ML / RATE_ML_S)
                                     for f in frames]))]
        how = "DSA" if mode == "dsa" else mode
        self.key_frames.append((f"contrast test dose {self.count} ({how}): classifier says "
                                f"{in_words(res.label)}; truth {in_words(comp)}",
                                draw_contrast(peak, res)))
        self.confirm_info[f"test_{self.count}"] = {
            "mode": mode, "view": peak.settings.get("view", "custom"), "label": res.label,
            "confidence": round(float(res.confidence), 3),
            "alarm_time_s": None if res.alarm_time_s is None else
            round(float(res.alarm_time_s - self._t0), 3),
            "true_compartment": comp, "true_vascular_share": round(vasc, 3)}
        if vasc >= 0.5:
            self.log.score(Event(t_s, "intravascular_injection", bool(alarm),
                                 f"test dose {self.count}: {in_words(comp)}; classifier "
                                 f"{in_words(res.label)}"))
        elif comp == "intrathecal":
            self.log.score(Event(t_s, "intrathecal_injection", res.label == "intrathecal",
                                 f"classifier {in_words(res.label)}"))
        if alarm and vasc < 0.5:
            self.log.score(Event(t_s, "false_alarm", True,
                                 f"classifier {in_words(res.label)}; truth {in_words(comp)}"))

    def state_phase(self) -> str | None:
        if self._flowing:
            return "injecting"
        if self._reading is not None:
            return "reading"
        return None


__all__ = ["TestDose"]
