"""The trainer's C-arm: angles (absolute) and the procedure's named views, the foot
pedal (pulsed fluoroscopy at the fluoroscope's pulse rate while it is down, last-image
hold when it is up), spot images, DSA run frames, and the spine level labels of each
pose (``guidance.levels_spine.label_spine``, once per pose).

A new pose costs one projection (≈ 0.4–1 s, on the first frame there); the fluoroscope
caches the last few. Angles set by hand are rounded to whole degrees so that coming back
to an angle finds its projection cached.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from needleguide.fluoro.sequences import dsa_mask_frame, dsa_subtracted_frame
from needleguide.frame import Dose, Frame
from needleguide.scene import Scene

ANGLE_STEP_DEG = 1.0  # hand-set angles are rounded to this (the pose cache's key)
DSA_FPS = 6.0  # DSA frames per second (session/confirm.py)
DSA_WINDOW = 0.25  # log-subtraction display window (fluoro.sequences.dsa_sequence)
CUSTOM = "custom"


def pose_key(carm) -> tuple:
    return (tuple(np.round(carm.isocenter_mm, 6)), round(float(carm.orbit_deg), 6),
            round(float(carm.tilt_deg), 6))


class CArmControl:
    """The C-arm and fluoroscope of a trainer session (``view``: its
    ``live.views.FluoroView``, whose poses of the working and confirmation views are
    already cached)."""

    def __init__(self, view):
        self.fl = view.fl
        self.named = dict(view.carms)
        self.view = view.working
        self.carm = self.named[self.view]
        self.pedal = False
        self.spots = 0
        self.dsa_runs = 0
        self.spots_due = 0  # spot images asked for, taken on the next tick
        self._next_pulse: float | None = None
        self._next_dsa = 0.0
        self._mask = None  # the DSA run's mask exposure
        self._run = None  # the open irradiation-event run (a test dose)
        self._levels: dict[tuple, object] = {}

    # ---- pose -----------------------------------------------------------------------------
    def set_angles(self, orbit_deg: float | None = None, tilt_deg: float | None = None
                   ) -> None:
        """Swing the C-arm (absolute angles; a missing one stays) about the current
        isocentre; angles within 0.05° of a named view's are that view."""
        from needleguide.fluoro.carm import CArm

        o = self.carm.orbit_deg if orbit_deg is None else \
            round(orbit_deg / ANGLE_STEP_DEG) * ANGLE_STEP_DEG
        t = self.carm.tilt_deg if tilt_deg is None else \
            round(tilt_deg / ANGLE_STEP_DEG) * ANGLE_STEP_DEG
        for name, c in self.named.items():
            if abs(c.orbit_deg - o) < 0.05 and abs(c.tilt_deg - t) < 0.05 and \
                    np.allclose(c.isocenter_mm, self.carm.isocenter_mm):
                self.use(name)
                return
        self.view = CUSTOM
        self.carm = CArm(geometry=self.carm.geometry, isocenter_mm=self.carm.isocenter_mm,
                         orbit_deg=float(o), tilt_deg=float(t), view=CUSTOM)

    def use(self, name: str) -> None:
        self.view = name
        self.carm = self.named[name]

    # ---- exposures --------------------------------------------------------------------------
    def set_pedal(self, down: bool) -> None:
        self.pedal = bool(down)

    def pulse_due(self, t_s: float, pulsing: bool) -> bool:
        """Whether a pulse is due at ``t_s`` (pulses at the pulse rate while ``pulsing``:
        the pedal is down or a live test dose runs; the first at once)."""
        if not pulsing:
            self._next_pulse = None
            return False
        if self._next_pulse is None:
            self._next_pulse = t_s
        return t_s >= self._next_pulse - 1e-6

    def pulsed(self, scene: Scene) -> Frame:
        """One pulse (dose counted; the recursive filter carries a run of pulses)."""
        period = 1.0 / self.fl.settings.pulse_rate
        t = scene.time_s
        self._next_pulse = (self._next_pulse or t) + period
        if self._next_pulse <= t:  # ticks slower than the pulse rate: one pulse per tick
            self._next_pulse = t + period
        return self.fl.frame(scene, "pulsed", self.carm)

    def spot(self, scene: Scene) -> Frame:
        self.spots += 1
        return self.fl.frame(scene, "spot", self.carm)

    def dsa(self, scene: Scene, mask: bool) -> Frame:
        """One DSA frame: the mask (``mask``; unsubtracted) or a subtracted frame, as
        ``fluoro.sequences.dsa_sequence`` makes them, but one per tick."""
        if mask or self._mask is None:
            frame, self._mask = dsa_mask_frame(self.fl, scene, self.carm)
            self.dsa_runs += 1
            return frame
        return dsa_subtracted_frame(self.fl, scene, self.carm, self._mask,
                                    window=DSA_WINDOW)

    def due(self, t_s: float, scene, doses) -> tuple[Frame | None, int]:
        """The frame due at ``t_s`` (with truth) and the exposures made: the spot images
        asked for (the last one shown), else a DSA run frame (``DSA_FPS``), else a pulse
        while the pedal is down or a live test dose runs; (None, 0) when nothing is due.
        ``scene()`` gives the scene at ``t_s``; ``doses``: the session's ``TestDose``."""
        frame, n = None, 0
        while self.spots_due:
            self.spots_due -= 1
            frame, n = self.spot(scene()), n + 1
        if frame is None and doses.flowing and doses.dsa:
            if t_s >= self._next_dsa - 1e-6:
                frame = self.dsa(scene(), mask=t_s <= doses.t0_s + 1e-9)
                self._next_dsa = max(self._next_dsa + 1.0 / DSA_FPS, t_s)
                n += 1
            self.pulse_due(t_s, False)
        elif frame is None and self.pulse_due(t_s, self.pedal or doses.flowing):
            frame, n = self.pulsed(scene()), 1
        return frame, n

    def open_run(self, label: str, t_s: float) -> None:
        """Book the exposures from ``t_s`` on as one irradiation event (a test dose; a
        DSA run's frames start then)."""
        self.close_run()
        self._run = self.fl.run(label)
        self._run.__enter__()
        self._next_dsa = float(t_s)

    def close_run(self) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.__exit__(None, None, None)
        self._mask = None

    @staticmethod
    def hold(shown: Frame | None, t_s: float, carm) -> Frame:
        """Last-image hold: ``shown`` at ``t_s`` without dose (a black detector image
        before the first exposure)."""
        if shown is None:
            g = carm.geometry
            return Frame(pixels=np.zeros((g.pixels, g.pixels), np.float32),
                         spacing_mm=(g.pixel_mm, g.pixel_mm), ImageToPatient=carm.ImageToPatient,
                         time_s=float(t_s), modality="fluoro",
                         settings={"last_image_hold": True, "view": carm.view})
        return dataclasses.replace(shown, time_s=float(t_s), dose=Dose(), truth=None,
                                   settings={**shown.settings, "last_image_hold": True})

    def levels(self, frame: Frame, carm):
        """The spine level labels of ``carm``'s pose, from its first pulsed or spot frame
        (``label_spine``; the anatomy does not move, so once per pose)."""
        key = pose_key(carm)
        if key not in self._levels and frame.settings.get("dsa_role") != "subtracted":
            from needleguide.guidance.levels_spine import label_spine

            self._levels[key] = label_spine(frame)
        return self._levels.get(key)

    def state(self) -> dict:
        d = self.fl.dose_total
        return {"orbit_deg": round(float(self.carm.orbit_deg), 1) + 0.0,  # no -0.0
                "tilt_deg": round(float(self.carm.tilt_deg), 1) + 0.0, "view": self.view,
                "views": list(self.named), "pedal": self.pedal,
                "pulse_rate_hz": float(self.fl.settings.pulse_rate),
                "fluoro_time_s": round(float(d.fluoro_time_s), 2),
                "dap_gy_cm2": round(float(d.dap_gy_cm2), 5),
                "k_ref_mgy": round(float(d.air_kerma_mgy), 4),
                "spots": self.spots, "dsa_runs": self.dsa_runs}


__all__ = ["CArmControl", "DSA_FPS", "pose_key"]
