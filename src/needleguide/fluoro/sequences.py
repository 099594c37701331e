"""Acquisition sequences: needle advance under pulsed fluoroscopy (with last-image hold)
and digital subtraction angiography (mask + subtracted contrast frames)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from needleguide import geometry
from needleguide.anatomy.patient import Patient
from needleguide.errors import UserError
from needleguide.fluoro.carm import CArm
from needleguide.fluoro.imager import Fluoroscope, needle_truth
from needleguide.frame import Dose, Frame
from needleguide.scene.needle import Needle
from needleguide.scene.scene import Scene

NEEDLE_LENGTHS_MM = (89.0, 127.0, 152.0, 178.0)  # 3.5", 5", 6", 7" spinal needles


def skin_entry(patient: Patient, target_mm, direction_out) -> np.ndarray:
    """First point outside the body (label 0) walking from ``target_mm`` along the unit
    ``direction_out`` (0.5 mm steps), i.e. the skin entry of a straight path to the target."""
    entry, _, _ = patient.walk_to_skin(target_mm, direction_out, max_mm=400.0)
    if entry is None:
        raise UserError("needle: no skin entry found within 400 mm of the target")
    return entry


def plan_needle(patient: Patient, carm: CArm, target_mm, approach_tilt_deg: float = 20.0,
                gauge: int = 22) -> tuple[Needle, np.ndarray]:
    """A straight needle from a skin entry to ``target_mm``: near-coaxial with the beam
    ("down the beam", the usual oblique-view technique), tilted ``approach_tilt_deg``
    (*assumption*) toward the patient's head so that the shaft is seen as a short line.
    Returns the needle with its tip just under the skin, and the target."""
    out = carm.beam  # from the target back toward the detector side (posterior skin)
    sup = np.array([0.0, 0.0, 1.0])
    ax = np.cross(out, sup)
    axis = geometry.rotation_about_axis(ax, np.radians(approach_tilt_deg)) @ out \
        if np.linalg.norm(ax) > 1e-6 else out
    entry = skin_entry(patient, target_mm, axis)
    path = float(np.linalg.norm(entry - np.asarray(target_mm, float)))
    length = next((x for x in NEEDLE_LENGTHS_MM if x >= path + 15.0), None)
    if length is None:
        raise UserError(f"needle: the path to the target is {path:.0f} mm, longer than the "
                        f"longest spinal needle ({NEEDLE_LENGTHS_MM[-1]:.0f} mm)")
    needle = Needle.from_entry_and_target(entry, target_mm, gauge=gauge, length_mm=length,
                                          inserted_mm=min(5.0, path))
    return needle, np.asarray(target_mm, float)


def advance_sequence(fluoro: Fluoroscope, scene: Scene, needle: Needle, target_mm,
                     step_mm: float = 5.0, burst_pulses: int = 5, hold_pulses: int = 5,
                     carm: CArm | None = None) -> Iterator[Frame]:
    """Frames at the pulse rate while the needle is advanced toward ``target_mm``.

    Intermittent technique: the needle is pushed ``step_mm`` while the pedal is down for
    ``burst_pulses`` pulses (beam on, the needle moves a fraction of the step each pulse),
    then ``hold_pulses`` frame periods of last-image hold (beam off, no dose, the same
    image repeated with ``settings['last_image_hold'] = True``). Each burst is one
    irradiation event (its pulses follow at the pulse rate: fluoro/dose_events.py)."""
    carm = carm or fluoro.carm
    target = np.asarray(target_mm, float)
    period = 1.0 / fluoro.settings.pulse_rate
    t = scene.time_s
    nd = needle
    while True:
        remaining = float(np.dot(target - nd.tip, nd.axis))
        step = min(step_mm, max(remaining, 0.0))
        last = None
        for i in range(burst_pulses):
            nd_i = nd.advanced(step * (i + 1) / burst_pulses)
            sc = scene.with_needle(nd_i).with_time(t)
            last = fluoro.frame(sc, "pulsed", carm)
            yield last
            t += period
        nd = nd.advanced(step)
        for _ in range(hold_pulses):
            held = fluoro.hold(t)  # the filtered last image stays on the monitor
            yield held if held is not None else dataclasses.replace(
                last, time_s=t, dose=Dose(),
                settings={**last.settings, "last_image_hold": True})
            t += period
        if remaining <= step_mm + 1e-6:
            return


def live_run(fluoro: Fluoroscope, scene: Scene, t_start_s: float, t_end_s: float,
             carm: CArm | None = None) -> list[Frame]:
    """Pulsed fluoroscopy with the pedal held from ``t_start_s`` to ``t_end_s`` (scene
    time): one frame per pulse at the pulse rate, through the live chain (the recursive
    filter carries the run), as the monitor shows it."""
    carm = carm or fluoro.carm
    period = 1.0 / fluoro.settings.pulse_rate
    times = np.arange(t_start_s, t_end_s + 1e-9, period)
    with fluoro.run("live pulsed fluoroscopy"):  # the pedal held: one irradiation event
        return [fluoro.frame(scene.with_time(float(t)), "pulsed", carm) for t in times]


def dsa_sequence(fluoro: Fluoroscope, scenes: Sequence[Scene], carm: CArm | None = None,
                 misregistration_px: tuple[float, float] = (0.0, 0.0),
                 window: float = 0.25) -> list[Frame]:
    """Digital subtraction: ``scenes[0]`` is the mask (before contrast), every later scene
    a contrast frame; each is exposed at the DSA dose per frame. Subtracted pixels
    ``0.5 + (ℓ_mask − ℓ_live) / (2·window)`` (log subtraction, iodine dark on mid-grey).
    ``misregistration_px`` (dx, dy) shifts the anatomy of the contrast frames (patient
    motion): bone edges then survive the subtraction. The first frame returned is the
    (unsubtracted) mask."""
    if len(scenes) < 2:
        raise UserError("dsa: need a mask scene and at least one contrast scene")
    carm = carm or fluoro.carm
    with fluoro.run("DSA"):  # the whole run is one irradiation event
        return _dsa_frames(fluoro, scenes, carm, misregistration_px, window)


def dsa_mask_frame(fluoro: Fluoroscope, scene: Scene, carm: CArm):
    """The (unsubtracted) mask of a DSA run and its exposure (for
    :func:`dsa_subtracted_frame`)."""
    mask = fluoro.expose(scene, "dsa", carm)
    return fluoro._frame(scene, carm, fluoro.display(mask.log_image, carm), mask, "dsa",
                         {"dsa_role": "mask"}), mask


def dsa_subtracted_frame(fluoro: Fluoroscope, scene: Scene, carm: CArm, mask,
                         misregistration_px: tuple[float, float] = (0.0, 0.0),
                         window: float = 0.25) -> Frame:
    """One subtracted DSA frame of ``scene`` against the ``mask`` exposure: pixels
    ``0.5 + (ℓ_mask − ℓ_live) / (2·window)`` (iodine dark on mid-grey)."""
    live = fluoro.expose(scene, "dsa", carm, shift_px=tuple(map(float, misregistration_px)))
    sub = 0.5 + (mask.log_image - live.log_image) / (2.0 * window)
    pix = (np.clip(sub, 0.0, 1.0) * fluoro._pose(carm).field).astype(np.float32)
    return fluoro._frame(scene, carm, pix, live, "dsa", {
        "dsa_role": "subtracted", "misregistration_px": list(misregistration_px),
        "subtraction_window": window})


def _dsa_frames(fluoro: Fluoroscope, scenes: Sequence[Scene], carm: CArm,
                misregistration_px: tuple[float, float], window: float) -> list[Frame]:
    first, mask = dsa_mask_frame(fluoro, scenes[0], carm)
    return [first] + [dsa_subtracted_frame(fluoro, sc, carm, mask, misregistration_px,
                                           window) for sc in scenes[1:]]


__all__ = ["advance_sequence", "dsa_mask_frame", "dsa_sequence", "dsa_subtracted_frame",
           "live_run", "needle_truth", "plan_needle", "skin_entry"]
