"""Path planning for the virtual operator: a straight needle path from a skin entry to the
target that crosses none of the procedure's structures to avoid.

Candidates: for fluoroscopy, directions near-coaxial with the working view's beam (the
"down the beam" technique) tilted 0–40° cranially/caudally and medially/laterally; for
ultrasound, in-plane paths in the probe's image plane entering beyond the end of the probe
at 25–70° to the skin. Each candidate's straight line is sampled every 0.5 mm with
``patient.label_at``; a path is rejected when it crosses a tissue of ``avoid`` (outside the
last ``target_margin_mm`` before the target, where the target itself lies) or bone before
the target. The shortest clear path wins; when none is clear (e.g. a foramen behind bone
for an in-plane ultrasound path) the least blocked one is taken and flagged
(``blocked_mm``): the session then meets bone, as an operator would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide import geometry
from needleguide.anatomy.patient import Patient
from needleguide.errors import UserError

NEEDLE_LENGTHS_MM = (89.0, 127.0, 152.0, 178.0)  # 3.5", 5", 6", 7" spinal needles


@dataclass(frozen=True)
class PathPlan:
    """A planned straight path: skin entry and target (RAS mm), unit axis (entry → target),
    path length (mm), needle length (mm), and the tissues the path crosses."""

    entry_mm: np.ndarray
    target_mm: np.ndarray
    axis: np.ndarray
    path_mm: float
    needle_length_mm: float
    crossed: tuple[str, ...]
    candidates_tried: int
    blocked_mm: float = 0.0  # > 0: no clear path existed; the least blocked one was taken

    def point_at(self, inserted_mm: float) -> np.ndarray:
        """Planned tip position after ``inserted_mm`` of insertion."""
        return self.entry_mm + self.axis * float(inserted_mm)

    def depth_of(self, point_mm) -> float:
        """Depth (mm) along the planned line of a point's projection on it (the inverse
        of :meth:`point_at`)."""
        return float(np.dot(np.asarray(point_mm, float) - self.entry_mm, self.axis))


def _name_of(patient: Patient, label: int) -> str:
    """Tissue name of a label id."""
    return str(patient.tissues[int(label)].name)


def is_bone(patient: Patient, label: int) -> bool:
    """Whether a label id is bone (tissue material ``*bone*``)."""
    return "bone" in str(patient.tissues[int(label)].material)


def entry_along(patient: Patient, target_mm, direction_out) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """Skin entry walking from the target along ``direction_out``; also the sample
    distances (mm from the target) and labels up to the skin."""
    return patient.walk_to_skin(target_mm, direction_out, max_mm=300.0)


def check_path(patient: Patient, steps: np.ndarray, labels: np.ndarray, avoid: set[str],
               target_margin_mm: float) -> tuple[float, tuple[str, ...]]:
    """Blocked length (mm of avoided tissue or bone farther than ``target_margin_mm`` from
    the target; 0 = clear) of a sampled path (distances from the target, labels), and the
    tissue names it crosses (skin → target order)."""
    names = {int(x): _name_of(patient, int(x)) for x in np.unique(labels)}
    crossed = []
    for x in labels[::-1]:
        n = names[int(x)]
        if not crossed or crossed[-1] != n:
            crossed.append(n)
    bad = {x for x, n in names.items() if n in avoid or is_bone(patient, x)}
    far = steps > target_margin_mm
    blocked = float(np.count_nonzero(np.isin(labels[far], list(bad)))) * 0.5 if bad else 0.0
    return blocked, tuple(crossed)


def _near_bone_mm(patient: Patient, target: np.ndarray, d: np.ndarray, path_mm: float,
                  margin: float, offset_mm: float = 2.0) -> float:
    """Length (mm) of the path beyond ``margin`` from the target whose ``offset_mm``
    neighbourhood (4 directions across the path) holds bone: a narrow corridor."""
    d = d / np.linalg.norm(d)
    a = np.cross(d, [0.0, 0.0, 1.0])
    a = a / np.linalg.norm(a) if np.linalg.norm(a) > 1e-6 else np.array([1.0, 0, 0])
    b = np.cross(d, a)
    steps = np.arange(margin, path_mm, 0.5)
    pts = target[None] + steps[:, None] * d[None]
    near = np.zeros(steps.size, bool)
    for o in (a, -a, b, -b):
        lab = patient.label_at(pts + offset_mm * o[None])
        near |= np.array([is_bone(patient, int(x)) for x in lab])
    return float(near.sum()) * 0.5


def cleft_run_mm(labels: np.ndarray, cleft_label: int) -> float:
    """Length (mm) of the path, from the target outward, that stays in the joint cleft
    (``cleft_label``) before leaving it (samples every 0.5 mm)."""
    out = np.flatnonzero(np.asarray(labels) != cleft_label)
    return 0.5 * float(out[0] if out.size else len(labels))


def _choose(patient: Patient, target: np.ndarray, dirs, avoid, margin, max_len,
            corridor: bool = False, cleft_label: int | None = None):
    """Shortest clear path (``corridor``: the one with the least bone within 2 mm of it,
    then the shortest; ``cleft_label``: the one running longest, up to 12 mm, inside the
    joint cleft before the target, then the shortest); if none is clear, the least
    blocked one (flagged)."""
    best = None
    for d in dirs:
        entry, steps, labels = entry_along(patient, target, d)
        if entry is None:
            continue
        blocked, crossed = check_path(patient, steps, labels, avoid, margin)
        path = float(np.linalg.norm(entry - target))
        if path + 10.0 > max_len:
            continue
        near = _near_bone_mm(patient, target, np.asarray(d, float), path, margin) \
            if corridor else 0.0
        if cleft_label is not None:
            near = -min(cleft_run_mm(labels, cleft_label), 12.0)
        key = (blocked, near + 0.05 * path)
        if best is None or key < best[0]:
            best = (key, entry, path, crossed)
    return None if best is None else (best[1], best[2], best[3], best[0][0])


def plan_fluoro_path(patient: Patient, target_mm, beam_out, avoid=(), max_needle_mm=178.0,
                     target_margin_mm: float = 4.0, cleft: bool = False) -> PathPlan:
    """Down-the-beam path: ``beam_out`` (unit, from the target toward the skin/source side)
    tilted up to 40° in two directions; the shortest path clearing ``avoid``. ``cleft``:
    the target lies in a joint cleft, which the needle enters along its plane (the path
    running longest inside the cleft wins; tilts every 5°)."""
    target = np.asarray(target_mm, float)
    b = np.asarray(beam_out, float) / np.linalg.norm(beam_out)
    sup = np.array([0.0, 0.0, 1.0])
    a1 = np.cross(b, sup)
    a1 = a1 / np.linalg.norm(a1) if np.linalg.norm(a1) > 1e-6 else np.array([1.0, 0, 0])
    a2 = np.cross(b, a1)
    dirs = []
    t1s = (20.0, 10.0, 30.0, 0.0, 40.0) if not cleft else np.arange(-40.0, 40.1, 5.0)
    t2s = (0.0, 10.0, -10.0, 20.0, -20.0) if not cleft else np.arange(-40.0, 40.1, 5.0)
    for t1 in t1s:
        for t2 in t2s:
            r = geometry.rotation_about_axis(a1, np.radians(t1)) @ \
                (geometry.rotation_about_axis(a2, np.radians(t2)) @ b)
            dirs.append(r)
    cl = int(patient.label_at(target[None])[0]) if cleft else None
    best = _choose(patient, target, dirs, set(avoid), target_margin_mm, max_needle_mm,
                   cleft_label=cl)
    if best is None:
        raise UserError("plan: no skin entry found for a path to the target")
    return _plan(best, target, len(dirs))


def plan_in_plane_path(patient: Patient, target_mm, ProbeToPatient, half_width_mm: float,
                       avoid=(), max_needle_mm=178.0, target_margin_mm: float = 4.0,
                       cleft: bool = False) -> tuple[PathPlan, np.ndarray]:
    """In-plane path in the probe's image plane (probe x lateral, y depth), entering beyond
    the end of the probe on the target's side at 25–70° to the skin (``cleft``: the path
    running longest inside the target's joint cleft wins). Returns the plan and the target
    projected on the image plane (the aim)."""
    P2P = np.asarray(ProbeToPatient, float)
    t_p = geometry.apply(geometry.invert(P2P), np.asarray(target_mm, float))
    t_p[2] = 0.0
    aim = geometry.apply(P2P, t_p)
    side = -1.0 if t_p[0] < 0 else 1.0
    dirs = []
    for s2 in (1.0, -1.0):  # the target's side first, then the other end of the probe
        for ang in np.arange(20.0, 75.1, 2.5):
            a = np.radians(ang)  # from the target up and out, in the image plane
            dirs.append(P2P[:3, :3] @ np.array([s2 * side * np.cos(a), -np.sin(a), 0.0]))
    cands = []
    for d in dirs:
        entry, steps, labels = entry_along(patient, aim, d)
        if entry is None:
            continue
        e_p = geometry.apply(geometry.invert(P2P), entry)
        if abs(e_p[0]) < half_width_mm + 2.0:  # must enter beyond the end of the probe
            continue
        cands.append(d)
    cl = int(patient.label_at(aim[None])[0]) if cleft else None
    best = _choose(patient, aim, cands, set(avoid), target_margin_mm, max_needle_mm,
                   corridor=True, cleft_label=cl)
    if best is None:
        raise UserError("plan: no in-plane skin entry beyond the probe for this target")
    return _plan(best, aim, len(dirs)), aim


def _plan(best, target: np.ndarray, n: int) -> PathPlan:
    entry, path, crossed, blocked = best
    length = next((x for x in NEEDLE_LENGTHS_MM if x >= path + 15.0), None)
    if length is None:
        raise UserError(f"plan: the path is {path:.0f} mm, longer than the longest spinal "
                        f"needle ({NEEDLE_LENGTHS_MM[-1]:.0f} mm)")
    axis = (target - entry) / path
    return PathPlan(entry, target, axis, path, length, crossed, n, blocked)
