"""Labelled fluoroscopy frames of the whole spine for the level evaluation (reads the
phantom: evaluation side only, never imported by the analysers).

A case is one spot or pulsed frame of a whole-spine patient (phantom, or a CT imported
through the CT path) with a random field of view: a point drawn uniformly along the spine
from C2 to S1, an AP, lateral or oblique (15–45°, either side) view of it with a few
degrees of random orbit and tilt, the isocentre moved up to 15 mm across and 20 mm along
the spine, automatic exposure, random display polarity. Truth: the vertebrae whose body
centres project into the image (``frame.truth.vertebrae_px``), the anchors in view and
the region of the centre vertebra.

Anchors in view: the anchor structure's vertebra has its body centre in the image —
``S1`` (the sacrum), ``T12`` (the last rib: the last rib-bearing vertebra, T11 with 11
rib pairs, L1 with 13), ``T1`` (the first rib), ``C2`` (the dens), ``C7`` (its long
spinous process). Frames with none of them are the ones where a labeller must say that
it does not know; frames where an anchor's vertebra is only partly in the image (its
centre outside, within 0.6 pitch of the edge) are counted apart (``partial_anchors``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VIEWS = ("ap", "lateral", "oblique")
VIEW_P = (0.4, 0.35, 0.25)


@dataclass
class Case:
    """One labelled frame: the frame (with truth), its view family, the truth vertebrae
    (name → (col, row) px), the anchors in view, the frame's region, the patient's
    variant label, and the anchors only partly in view (``partial_anchors``)."""

    frame: object
    view: str
    truth: dict[str, tuple[float, float]]
    anchors: tuple[str, ...]
    region: str
    variant: str
    transitional: bool
    seed: int
    partial: tuple[str, ...] = ()


def region_of(name: str) -> str:
    """'cervical' (C1–C7), 'thoracic' (T1–T12) or 'lumbar' (L1–S1)."""
    return {"C": "cervical", "T": "thoracic"}.get(name[0], "lumbar")


def anchors_in_view(names_in_view: list[str], order: list[str], rib_bearing: list[str],
                    view: str) -> tuple[str, ...]:
    """The anchors in view (module docstring): the vertebra that carries each anchor
    structure has its body centre in the image."""
    v = set(names_in_view)
    out = []
    if "S1" in v:
        out.append("S1")
    if rib_bearing and rib_bearing[-1] in v:
        out.append("T12")
    if rib_bearing and rib_bearing[0] in v:
        out.append("T1")
    if "C2" in v:
        out.append("C2")
    if "C7" in v:
        out.append("C7")
    return tuple(out)


def partial_anchors(px: dict[str, tuple[float, float]], truth: dict, order: list[str],
                    rib_bearing: list[str], pixels: int) -> tuple[str, ...]:
    """Anchors whose vertebra's centre lies outside the image but within 0.6 of the local
    pitch of its edge: part of that vertebra is in view (a reader might count from it;
    such frames are neither 'with' nor 'without' an anchor in the evaluation)."""
    names = sorted(truth, key=order.index)
    gaps = [np.hypot(truth[b][0] - truth[a][0], truth[b][1] - truth[a][1])
            for a, b in zip(names[:-1], names[1:], strict=False)]
    m = 0.6 * (float(np.median(gaps)) if gaps else 40.0)
    who = {"S1": "S1", "C2": "C2", "C7": "C7"}
    if rib_bearing:
        who[rib_bearing[-1]] = "T12"
        who[rib_bearing[0]] = "T1"
    out = []
    for v, a in who.items():
        if v in truth or v not in px:
            continue
        c, r = px[v]
        if -m <= c <= pixels - 1 + m and -m <= r <= pixels - 1 + m:
            out.append(a)
    return tuple(sorted(set(out)))


def _arc_fraction(patient, rng: np.random.Generator, around: str | None) -> float:
    """A uniform arc fraction from C2 to S1, or one within ±60 mm of ``around``."""
    u = float(rng.uniform(0.0, 1.0))
    if around is None or around not in patient.vertebrae:
        return u
    names = list(patient.vertebrae)
    a = names.index("C2") if "C2" in names else 0
    b = names.index("S1") if "S1" in names else len(names) - 1
    c = np.array([patient.vertebrae[n].center_mm for n in names[a:b + 1]], float)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(c, axis=0), axis=1))])
    k = names.index(around) - a
    t = cum[int(np.clip(k, 0, len(cum) - 1))] + (2 * u - 1) * 60.0
    return float(np.clip(t / cum[-1], 0.0, 1.0))


def _spine_point(patient, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point, superior and anterior axes at arc fraction ``s`` along the vertebral centres
    from C2 to S1."""
    names = list(patient.vertebrae)
    a, b = names.index("C2") if "C2" in names else 0, names.index("S1") if "S1" in names \
        else len(names) - 1
    vs = [patient.vertebrae[n] for n in names[a:b + 1]]
    c = np.array([v.center_mm for v in vs], float)
    seg = np.linalg.norm(np.diff(c, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    t = s * cum[-1]
    k = int(np.clip(np.searchsorted(cum, t) - 1, 0, len(vs) - 2))
    w = (t - cum[k]) / max(seg[k], 1e-9)
    p = (1 - w) * c[k] + w * c[k + 1]
    sup = (1 - w) * np.asarray(vs[k].superior) + w * np.asarray(vs[k + 1].superior)
    ant = (1 - w) * np.asarray(vs[k].anterior) + w * np.asarray(vs[k + 1].anterior)
    sup /= np.linalg.norm(sup)
    if sup[2] < 0:  # an imported CT's axes may come out flipped: superior is +z,
        sup = -sup
    if ant[1] < 0:  # anterior is +y (RAS)
        ant = -ant
    ant = ant - sup * (ant @ sup)
    return p, sup, ant / np.linalg.norm(ant)


def make_case(patient, rng: np.random.Generator, seed: int, pixels: int = 256,
              view: str | None = None, fluoroscope=None, around: str | None = None) -> Case:
    """One random labelled frame of ``patient`` (see the module docstring); with
    ``around`` (a vertebra name) the point is drawn within ±60 mm of that vertebra."""
    from needleguide.fluoro import CArm, CArmGeometry, Fluoroscope, make_settings
    from needleguide.fluoro.carm import angles_from_beam
    from needleguide.scene import Scene

    view = view or VIEWS[int(rng.choice(3, p=VIEW_P))]
    p, sup, ant = _spine_point(patient, _arc_fraction(patient, rng, around))
    right = np.cross(ant, sup)
    if view == "ap":
        b = -ant
    elif view == "lateral":
        b = right if rng.random() < 0.5 else -right
    else:
        th = np.radians(rng.uniform(15.0, 45.0)) * (1 if rng.random() < 0.5 else -1)
        b = -ant * np.cos(th) + right * np.sin(th)
    orbit, tilt = angles_from_beam(b)
    if abs(orbit) > 110.0:  # an imported CT's axes can point the beam from the back
        orbit, tilt = angles_from_beam(-b)
    orbit += float(rng.normal(0, 3.0))
    tilt = float(np.clip(tilt + rng.normal(0, 4.0), -45, 45))
    iso = p + right * rng.uniform(-15, 15) * (view != "lateral") \
        + ant * rng.uniform(-15, 15) * (view == "lateral") + sup * rng.uniform(-20, 20)
    display = ("white-bone", "black-bone")[int(rng.integers(0, 2))]
    fl = fluoroscope or Fluoroscope(patient, make_settings(
        geometry=CArmGeometry(pixels=pixels)), seed=seed)
    fl.settings = fl.settings.model_copy(update={"display": display})
    carm = CArm(geometry=fl.settings.geometry, isocenter_mm=tuple(iso), orbit_deg=orbit,
                tilt_deg=tilt, view=view if view != "oblique" else "custom")
    mode = "spot" if rng.random() < 0.5 else "pulsed"
    frame = fl.frame(Scene(patient), mode, carm)
    truth = dict(frame.truth.vertebrae_px)
    order = list(patient.vertebrae)
    rib = list(patient.meta.get("variants", {}).get("rib_bearing", [f"T{i}" for i in
                                                                     range(1, 13)]))
    anchors = anchors_in_view(list(truth), order, rib, view)
    centre = min(truth, key=lambda n: np.hypot(truth[n][0] - pixels / 2,
                                               truth[n][1] - pixels / 2)) if truth else "L3"
    var = patient.meta.get("variants", {})
    px = {n: tuple(map(float, carm.project(v.center_mm))) for n, v in
          patient.vertebrae.items()}
    return Case(frame, view, truth, anchors, region_of(centre), var.get("label", "none"),
                bool(var.get("transitional", False)), seed,
                partial_anchors(px, truth, order, rib, pixels))


__all__ = ["Case", "make_case", "anchors_in_view", "partial_anchors", "region_of", "VIEWS"]
