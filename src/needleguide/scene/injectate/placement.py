"""Needle-tip positions that put the tip in a chosen compartment of a patient, from its
landmarks, vertebrae, centerlines and labels, and the needle that reaches such a tip
(``needle_for``), for the ``contrast`` demo, the labelled contrast cases
(:mod:`needleguide.lab.eval_contrast`) and tests. The tip only selects where the needle
is; the pattern then follows from the model."""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.errors import UserError, check_choice

PATTERNS = ("epidural", "intravascular", "intrathecal", "intra-articular", "soft-tissue",
            "interlaminar", "transforaminal", "caudal", "facet", "sacroiliac", "arterial",
            "venous")
#: volume (mL) and rate (mL/s) of the demonstration injection of each pattern (300 mg I/mL):
#: test doses under live fluoroscopy (Furman's atlas: 0.5–3 mL), a caudal epidurogram
#: 5 mL, a facet arthrogram up to and past the capsule's capacity, the sacroiliac joint
#: past its capacity (*assumptions* within the clinical ranges)
INJECTIONS = {"epidural": (3.0, 0.5), "interlaminar": (3.0, 0.5),
              "transforaminal": (1.5, 0.3), "caudal": (5.0, 1.0),
              "intravascular": (1.5, 0.5), "arterial": (1.5, 0.5), "venous": (1.5, 0.5),
              "intrathecal": (3.0, 0.5), "intra-articular": (0.6, 0.15),
              "facet": (1.8, 0.15), "sacroiliac": (3.0, 0.25), "soft-tissue": (3.0, 0.5)}
#: names that place the tip as another pattern does
ALIASES = {"interlaminar": "epidural", "facet": "intra-articular", "arterial": "intravascular"}


def _level_axes(patient: Patient, level: str) -> tuple[np.ndarray, np.ndarray]:
    names = [n for n in level.split("-") if n in patient.vertebrae]
    if not names:
        return np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
    s = np.sum([patient.vertebrae[n].superior for n in names], axis=0)
    a = np.sum([patient.vertebrae[n].anterior for n in names], axis=0)
    s = s / np.linalg.norm(s)
    a = a - s * (a @ s)
    return s, a / np.linalg.norm(a)


def march(patient: Patient, start_mm, direction, tissue: str, step_mm: float = 0.25,
          max_mm: float = 60.0) -> np.ndarray:
    """First point from ``start_mm`` along ``direction`` whose tissue is ``tissue``."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    ts = np.arange(0.0, max_mm, step_mm)
    pts = np.asarray(start_mm, float) + ts[:, None] * d
    hit = np.flatnonzero(patient.label_at(pts) == patient.tissues.label(tissue))
    if hit.size == 0:
        raise UserError(f"no {tissue} within {max_mm} mm of {np.round(start_mm, 1).tolist()}")
    return pts[hit[0]]


def tip_for_pattern(patient: Patient, pattern: str, level: str = "L4-L5",
                    side: str = "right") -> np.ndarray:
    """A tip (RAS mm) in the compartment that gives ``pattern`` at ``level``/``side``.

    epidural / interlaminar: the interlaminar epidural target; transforaminal: the safe
    triangle under the pedicle (the level's foramen landmark); caudal: the sacral hiatus;
    intravascular / arterial: on the segmental artery of the level's upper vertebra, 45 mm
    upstream of its radicular branch; venous: the epidural venous plexus voxel nearest the
    level's foramen; intrathecal: 1 mm into the CSF anterior to the interlaminar target;
    intra-articular / facet: the facet joint; sacroiliac: the inferior third of the
    sacroiliac joint; soft-tissue: 10 mm into the paraspinal muscle behind the facet joint.
    """
    check_choice("pattern", pattern, PATTERNS)
    check_choice("side", side, ("right", "left"))
    pattern = ALIASES.get(pattern, pattern)
    sup, ant = _level_axes(patient, level)
    if pattern == "epidural":
        return patient.landmark(f"{level}.interlaminar")
    if pattern == "transforaminal":
        return patient.landmark(f"{level}.foramen.{side}")
    if pattern == "caudal":
        return patient.landmark("sacral_hiatus")
    if pattern == "sacroiliac":
        return patient.landmark(f"sij.{side}.inferior")
    if pattern == "venous":
        return venous_tip(patient, level, side)
    if pattern == "intrathecal":
        first = march(patient, patient.landmark(f"{level}.interlaminar"), ant, "csf")
        return first + 1.0 * ant
    if pattern == "intra-articular":
        return patient.landmark(f"{level}.facet.{side}")
    if pattern == "soft-tissue":
        first = march(patient, patient.landmark(f"{level}.facet.{side}"), -ant,
                      "paraspinal_muscle")
        return first - 10.0 * ant
    vert = level.split("-")[0]
    name = f"{vert}.segmental_artery.{side}"
    if name not in patient.centerlines:
        raise UserError(f"level: no centerline {name!r} in this patient")
    seg = patient.centerlines[name]
    p = np.asarray(seg.points_mm, float)
    arc = np.concatenate(([0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))))
    s_branch = arc[-1] * 0.6
    for c in patient.centerlines.values():
        if c.parent == name:
            s_branch = float(arc[np.argmin(np.linalg.norm(p - c.points_mm[0], axis=1))])
    s = max(s_branch - 45.0, 0.25 * arc[-1])
    return np.array([np.interp(s, arc, p[:, k]) for k in range(3)])


def venous_tip(patient: Patient, level: str, side: str) -> np.ndarray:
    """A tip inside the epidural venous plexus voxel nearest the level's foramen."""
    if "epidural_venous_plexus" not in patient.tissues:
        raise UserError("pattern venous: this patient has no epidural venous plexus")
    lab = patient.tissues.label("epidural_venous_plexus")
    idx = np.argwhere(patient.labels == lab)
    if idx.size == 0:
        raise UserError("pattern venous: no epidural venous plexus voxel in this patient")
    pts = idx @ patient.VoxelToPatient[:3, :3].T + patient.VoxelToPatient[:3, 3]
    ref = patient.landmark(f"{level}.foramen.{side}")
    return pts[int(np.argmin(np.linalg.norm(pts - ref, axis=1)))]


def needle_for(patient: Patient, tip_mm, pattern: str, level: str, side: str):
    """A 22 G needle from the skin to the tip along the pattern's usual approach (used by
    ``needleguide contrast`` and the labelled contrast cases of :mod:`needleguide.lab`)."""
    from needleguide.scene.needle import Needle

    sup, ant = _level_axes(patient, level)
    sgn = 1.0 if side == "right" else -1.0
    lateral = {"intra-articular": 0.35, "intravascular": 0.8}.get(pattern, 0.0)
    out_dir_ = -ant + lateral * sgn * np.cross(ant, sup) - 0.15 * sup
    out_dir_ /= np.linalg.norm(out_dir_)
    steps = np.arange(0.0, 300.0, 0.5)
    labels = patient.label_at(np.asarray(tip_mm, float) + steps[:, None] * out_dir_)
    outside = np.flatnonzero(labels == 0)
    path = float(steps[outside[0]]) if outside.size else 80.0
    length = next((x for x in (89.0, 127.0, 152.0, 178.0) if x >= path + 15.0), 200.0)
    entry = np.asarray(tip_mm, float) + path * out_dir_
    return Needle.from_entry_and_target(entry, tip_mm, gauge=22, length_mm=length,
                                        inserted_mm=min(path, length))
