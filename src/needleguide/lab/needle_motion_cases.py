"""Labelled ultrasound sequences for the needle-from-motion analyser (issue 16 part 4).

One sequence: an in-plane needle set up as in ``needle_cases._plan_us`` (insertion angle
15–70° to the face, standard lumbar and cervical views, random frequency, gain, dynamic
range, gauge, steering), seen at ``RATE_HZ`` by a probe held still (``tremor_mm`` > 0: an AR(1)
rigid jitter of σ ``tremor_mm`` per axis and ``tremor_mm`` × ``TREMOR_DEG_PER_MM``
in-plane rotation, hand tremor), while the operator

1. advances the needle over its last 6–15 mm at 2–8 mm/s (the tissue already dragged
   along by the insertion before: ``Needle.tissue_drag_mm`` = +Q),
2. holds it still for ``PAUSE_FRAMES`` frames,
3. jiggles it: in and out by 1–2 mm, one cycle at 1.5–2.5 Hz, then holds it again.

Each needle sequence has a needle-free twin: the same view, probe and tremor, no needle
(false positives). Frames whose true tip lies outside the image (or whose shaft shows
< 3 mm) are kept in the sequence (the analyser sees them) but not scored
(``params['scored']``). Only this module reads the simulators' truth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from needleguide import geometry
from needleguide.anatomy.patient import Patient
from needleguide.lab.needle_cases import Case, _plan_us, _usable
from needleguide.scene import Needle

RATE_HZ = 15.0
TREMOR_DEG_PER_MM = 1.0  # in-plane rotation of the tremor: 0.05° per 0.05 mm
TREMOR_AR = 0.7
PAUSE_FRAMES = 6
HOLD_AFTER_FRAMES = 4


@dataclass
class Sequence:
    """The frames (with truth) of one sequence, whether it has a needle, the phase of each
    frame (``advance``, ``pause``, ``jiggle``, ``hold``) and the parameters (JSON-able)."""

    cases: list[Case]
    has_needle: bool
    phases: list[str]
    params: dict = field(default_factory=dict)


def hand_tremor(rng: np.random.Generator, n: int, tremor_mm: float) -> list[np.ndarray]:
    """``n`` small rigid moves of the probe (ProbeToProbe'), AR(1) over the frames: σ
    ``tremor_mm`` per axis and ``tremor_mm`` × ``TREMOR_DEG_PER_MM`` in-plane rotation."""
    out, t, a = [], np.zeros(3), 0.0
    k = np.sqrt(1 - TREMOR_AR**2)
    for _ in range(n):
        t = TREMOR_AR * t + rng.normal(0.0, tremor_mm * k, 3)
        a = TREMOR_AR * a + rng.normal(0.0, tremor_mm * TREMOR_DEG_PER_MM * k)
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        out.append(geometry.make_transform(R, t))
    return out


def needle_path(nd: Needle, rng: np.random.Generator) -> tuple[list[Needle], list[str], dict]:
    """The needle of every frame (advance, pause, jiggle, hold) ending at ``nd``'s tip."""
    adv = float(min(rng.uniform(6.0, 15.0), 0.6 * nd.inserted_length_mm))
    speed = float(rng.uniform(2.0, 8.0))
    n_adv = int(np.clip(np.ceil(adv / (speed / RATE_HZ)), 4, 60))
    amp = float(rng.uniform(1.0, 2.0))
    hz = float(rng.uniform(1.5, 2.5))
    n_jig = int(np.ceil(RATE_HZ / hz))
    start = dataclasses.replace(nd, tissue_drag_mm=0.0).advanced(-adv - 2.0).advanced(2.0)
    needles, phases, cur = [], [], start
    for i in range(n_adv):
        cur = cur.advanced(start.inserted_length_mm + adv * (i + 1) / n_adv
                           - cur.inserted_length_mm)
        needles.append(cur)
        phases.append("advance")
    needles += [cur] * PAUSE_FRAMES
    phases += ["pause"] * PAUSE_FRAMES
    base = cur.inserted_length_mm
    for i in range(n_jig):
        want = base - amp * np.sin(np.pi * (i + 1) / n_jig) ** 2
        cur = cur.advanced(want - cur.inserted_length_mm)
        needles.append(cur)
        phases.append("jiggle")
    needles += [cur] * HOLD_AFTER_FRAMES
    phases += ["hold"] * HOLD_AFTER_FRAMES
    return needles, phases, {"advance_mm": adv, "speed_mm_s": speed, "jiggle_mm": amp,
                             "jiggle_hz": hz}


def us_motion_sequences(patient: Patient, region: str, rng: np.random.Generator,
                        seed: int, n: int, tremor_mm: float = 0.0) -> list[Sequence]:
    """``n`` needle sequences and their ``n`` needle-free twins on ``patient``
    (``tremor_mm``: σ of the probe's hand tremor per axis, mm; 0: held still)."""
    out: list[Sequence] = []
    tries = 0
    while len(out) < 2 * n and tries < 20 * n:
        tries += 1
        plan = _plan_us(patient, region, rng, seed + 7919 * tries)
        if plan is None:
            continue
        img, scene, nd, params = plan
        needles, phases, pp = needle_path(nd, rng)
        jitter = hand_tremor(rng, len(needles), tremor_mm)
        P2P = np.asarray(scene.poses["ProbeToPatient"], float)
        pos, neg = [], []
        for i, (ndi, J) in enumerate(zip(needles, jitter, strict=True)):
            sc = scene.with_time(i / RATE_HZ)
            pose = P2P @ J
            f = img.render(sc.with_needle(ndi), pose)
            pos.append(Case(f, True, {**params, **pp, "frame": i, "phase": phases[i],
                                      "scored": _usable(f, img.setup.spacing_mm)}))
        if sum(c.params["scored"] for c in pos) < len(pos) // 2:
            continue
        for i, J in enumerate(jitter):
            f = img.render(scene.with_time(i / RATE_HZ + 0.5 / RATE_HZ), P2P @ J)
            neg.append(Case(f, False, {**params, "frame": i, "needle": False, "scored": True,
                                       "phase_twin": phases[i]}))
        pp["tremor_mm"] = tremor_mm
        out.append(Sequence(pos, True, phases, {**params, **pp}))
        out.append(Sequence(neg, False, phases, {**params, **pp, "needle": False}))
    return out


__all__ = ["PAUSE_FRAMES", "RATE_HZ", "Sequence", "hand_tremor", "needle_path",
           "us_motion_sequences"]
