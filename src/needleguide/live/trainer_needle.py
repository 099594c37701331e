"""The trainee's needle: the session engine's physical needle (``session.engine.Body``:
entry scatter, aiming error and bevel curvature per pass, hand tremor per push, all from
the seed) moved by commands instead of the virtual operator.

- entry: a skin point picked on the image (FL: where the clicked pixel's ray from the
  focal spot meets the skin, the crossing nearest the planned entry, i.e. on the needle
  side; US: ``trainer_probe.ProbeControl.entry_at``).
- insert: a new pass from the entry aimed at the target (``Body.new_pass``), the tip
  ``INSERT_MM`` under the skin.
- advance: ``Body.advance`` (tremor, curvature), then the tip is walked along the move in
  ≤ ``SUB_STEP_MM`` steps: bone stops it on the cortex (``Body.back_out_of_bone``, event
  bone_contact), and the tissue under the tip is scored at every step
  (``session.engine.score_tissue``: nerve contact = paraesthesia, told to the trainee;
  vessel puncture and intrathecal entry are scored but not noticed). The needle stops
  ``HUB_MARGIN_MM`` short of the hub.
- withdraw: back along the shaft; out of the skin = the needle is out (next insert is
  the next pass).
- steer: the tip's direction turned across the shaft (in-plane: toward the image's
  lateral direction; out-of-plane: perpendicular to both).
"""

from __future__ import annotations

import numpy as np

from needleguide.live.autopilot import HUB_MARGIN_MM, SUB_STEP_MM
from needleguide.scene import Needle
from needleguide.session.engine import Body, score_tissue
from needleguide.session.models import Event, StepRecord
from needleguide.session.plan import is_bone

INSERT_MM = 2.0  # a new pass starts with the tip this far under the skin


def skin_on_ray(patient, origin, direction, near_mm, length_mm: float = 1200.0,
                step_mm: float = 0.5) -> np.ndarray | None:
    """Where the ray ``origin`` + s·``direction`` crosses the skin (the body-side sample
    of each air/body transition), the crossing nearest ``near_mm``; None if it misses
    the body."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    s = np.arange(0.0, length_mm, step_mm)
    pts = np.asarray(origin, float)[None] + s[:, None] * d[None]
    body = patient.label_at(pts) != 0
    ch = np.flatnonzero(body[1:] != body[:-1])
    if ch.size == 0:
        return None
    idx = np.where(body[ch + 1], ch + 1, ch)  # the body-side sample of each crossing
    cand = pts[idx]
    return cand[int(np.argmin(np.linalg.norm(cand - np.asarray(near_mm)[None], axis=1)))]


class NeedleControl:
    """The needle of a trainer session. ``log``: the session's ``TrainerLog``."""

    def __init__(self, patient, plan, proc, target_mm, target_name: str, modality: str,
                 seed: int, log):
        self.patient, self.plan, self.proc = patient, plan, proc
        self.target = np.asarray(target_mm, float)
        self.target_name, self.modality = target_name, modality
        self.body = Body(patient, plan, int(proc.needle.gauge), np.random.default_rng(seed))
        self.log = log
        self.entry: np.ndarray | None = None  # the picked skin entry
        self.aim: np.ndarray | None = None  # the direction this pass was aimed in
        self.in_body = False
        self.passes = 0
        self.seen: set = set()
        self.steps: list[StepRecord] = []
        self._open_step: StepRecord | None = None

    @property
    def gauge(self) -> int:
        return int(self.body.gauge)

    @property
    def length_mm(self) -> float:
        return float(self.plan.needle_length_mm)

    @property
    def inserted_mm(self) -> float:
        return float(self.body.inserted) if self.in_body else 0.0

    def needle(self) -> Needle | None:
        return self.body.needle() if self.in_body else None

    def guess(self) -> np.ndarray:
        """Where the trainee means the tip to be: the entry, along the aim, at the
        inserted length (what the hand and the needle markings tell)."""
        if self.entry is None or self.aim is None:
            return self.plan.target_mm.copy()
        return self.entry + self.aim * self.inserted_mm

    def error_mm(self) -> float:
        return float(np.linalg.norm(self.body.tip - self.target))

    # ---- commands ---------------------------------------------------------------------------
    def set_entry(self, t_s: float, point_mm) -> None:
        self.entry = np.asarray(point_mm, float).copy()
        self.log.tell(t_s, "info", "skin entry marked")

    def insert(self, t_s: float) -> None:
        b = self.body
        self.aim = Body._unit(self.target - self.entry)
        b.new_pass(self.entry, self.aim)
        b.tip = b.entry + b.axis * INSERT_MM
        b.inserted = INSERT_MM
        self.in_body = True
        self.passes += 1
        if self.passes > 1:
            self.log.score(Event(t_s, "redirect", True, f"pass {self.passes}: re-inserted"))
        self.log.tell(t_s, "pass", f"pass {self.passes}: needle through the skin, aimed at "
                      "the target")
        self._tissue(t_s)

    def advance(self, t_s: float, mm: float, dose) -> None:
        b = self.body
        room = self.length_mm - HUB_MARGIN_MM - b.inserted
        if room <= 0.05:
            self.log.tell(t_s, "info", "the needle is in to the hub")
            return
        tip0, ins0 = b.tip.copy(), b.inserted
        b.advance(min(mm, room))
        tip1, d = b.tip.copy(), b.inserted - ins0
        n = max(1, int(np.ceil(d / SUB_STEP_MM)))
        for k in range(1, n + 1):
            b.tip = tip0 + (tip1 - tip0) * (k / n)
            b.inserted = ins0 + d * (k / n)
            if is_bone(self.patient, int(self.patient.label_at(b.tip[None])[0])):
                b.back_out_of_bone()
                self._tissue(t_s)
                name = self.patient.tissue_name_at(b.tip + b.axis)
                self.log.score(Event(t_s, "bone_contact", True,
                                     f"{name} at {b.inserted:.0f} mm"))
                self.log.tell(t_s, "bone_contact", f"bone contact at {b.inserted:.0f} mm "
                              "inserted: the needle stops")
                break
            self._tissue(t_s)
        self._step(t_s, dose)

    def withdraw(self, t_s: float, mm: float, dose) -> None:
        b = self.body
        b.withdraw(mm)
        if b.inserted <= 1e-6:
            self.in_body = False
            b.tip = b.entry.copy()
            self.log.tell(t_s, "info", "the needle is out of the skin")
        else:
            self._step(t_s, dose)

    def steer(self, inplane_deg: float, outplane_deg: float, lateral) -> None:
        """Turn the tip's direction across the shaft: ``inplane_deg`` toward ``lateral``
        (the image's column direction, made perpendicular to the shaft), ``outplane_deg``
        toward the shaft × that."""
        b = self.body
        u = np.asarray(lateral, float) - b.axis * float(np.dot(lateral, b.axis))
        if np.linalg.norm(u) < 1e-6:
            u = Body._perp(b.axis)[0]
        u /= np.linalg.norm(u)
        w = np.cross(b.axis, u)
        want = b.axis + np.tan(np.radians(inplane_deg)) * u + \
            np.tan(np.radians(outplane_deg)) * w
        b.steer(want, max_deg=float(np.hypot(inplane_deg, outplane_deg)) + 1e-6)

    # ---- scoring ----------------------------------------------------------------------------
    def _tissue(self, t_s: float) -> None:
        before = len(self.log.events)
        score_tissue(self.patient, self.body, t_s, self.log.events, self.seen,
                     self.target_name, self.modality)
        for e in self.log.events[before:]:
            if e.kind == "nerve_contact":
                self.log.tell(t_s, "paraesthesia", "paraesthesia: the patient feels a "
                              "shooting pain (a nerve at the tip)")

    def _step(self, t_s: float, dose) -> None:
        b = self.body
        line = 0.0
        if self.entry is not None and self.aim is not None:
            v = b.tip - self.entry
            line = float(np.linalg.norm(v - self.aim * float(v @ self.aim)))
        self._open_step = StepRecord(t_s, self.passes, float(b.inserted), self.error_mm(),
                                     None, False, float(dose.dap_gy_cm2),
                                     float(dose.air_kerma_mgy), line, None)
        self.steps.append(self._open_step)

    def seen_on(self, det, tip_mm=None) -> None:
        """The needle analyser's result on the first frame after a needle move (the step
        record's ``detected`` and, where the image gives a 3D tip, its error)."""
        s, self._open_step = self._open_step, None
        if s is None:
            return
        s.detected = bool(det.found)
        if det.found and tip_mm is not None:
            s.est_vs_true_mm = float(np.linalg.norm(np.asarray(tip_mm) - self.body.tip))

    def state(self) -> dict:
        return {"in_body": self.in_body, "inserted_mm": round(self.inserted_mm, 1),
                "passes": self.passes, "gauge": self.gauge,
                "length_mm": round(self.length_mm, 1), "entry_set": self.entry is not None}


__all__ = ["INSERT_MM", "NeedleControl", "skin_on_ray"]
