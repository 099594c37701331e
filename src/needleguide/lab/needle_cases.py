"""Labelled needle cases for the needle analyser's evaluation, made with the real imagers.

Ultrasound: an in-plane needle entering beyond one end of the probe at an insertion angle
of 15–70° to the probe face (the skin line), stopped before bone, in standard lumbar and
cervical views, with random frequency, gain, dynamic range, gauge and (linear probe) beam
steering toward the needle. Fluoroscopy: a straight needle from the posterior skin toward a
spinal landmark at 20–85° to the beam (so the shaft projects as a line), partly or fully
inserted, in AP / oblique / lateral views, with random tube current (dose), kVp, pulsed
or spot mode and display polarity. Each needle case comes with a needle-free frame of the
same view for the false-positive rate. Only this module looks at the simulators' truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from needleguide import geometry
from needleguide.anatomy.patient import Patient
from needleguide.frame import Frame
from needleguide.scene import Needle, Scene

US_VIEWS = {
    "lumbar": (("transverse-facet", "L4-L5"), ("paramedian-sagittal", "L4-L5"),
               ("transverse-spinous", "L3-L4"), ("sij-transverse", None),
               ("caudal-longitudinal", None), ("transverse-facet", "L3-L4")),
    "cervical": (("c6-transverse", None), ("c2c3-longitudinal", None)),
}
FL_VIEWS = ("ap", "oblique-right", "oblique-left", "lateral")
FL_TARGETS = ("{lv}.foramen.{side}", "{lv}.facet.{side}", "{v}.medial_branch.{side}")


@dataclass(frozen=True)
class Case:
    """One labelled frame: the frame (with truth), whether it holds a needle, and the
    parameters that made it (JSON-able)."""

    frame: Frame
    has_needle: bool
    params: dict


def _bone_lut(patient: Patient) -> np.ndarray:
    lut = np.zeros(256, bool)
    lut[patient.tissues.labels_in_group("bone")] = True
    return lut


def stop_before_bone(patient: Patient, entry_mm: np.ndarray, tip_mm: np.ndarray,
                     margin_mm: float = 0.7) -> np.ndarray:
    """The tip moved back along the path to ``margin_mm`` before the first bone voxel."""
    d = tip_mm - entry_mm
    n = float(np.linalg.norm(d))
    if n <= 0.0:  # the tip at the entry: no path to walk
        return tip_mm
    t = np.arange(0.0, n, 0.25)
    lab = patient.label_at(entry_mm[None] + t[:, None] * (d / n)[None])
    hit = np.nonzero(_bone_lut(patient)[lab])[0]
    if hit.size == 0:
        return tip_mm
    return entry_mm + max(t[hit[0]] - margin_mm, 0.0) * d / n


def skin_entry_along(patient: Patient, tip_mm: np.ndarray, out_dir: np.ndarray,
                     max_mm: float = 300.0) -> np.ndarray | None:
    """First outside-the-body point walking from ``tip_mm`` along unit ``out_dir``."""
    return patient.walk_to_skin(tip_mm, out_dir, max_mm=max_mm)[0]


def _needle(entry: np.ndarray, tip: np.ndarray, gauge: int) -> Needle | None:
    path = float(np.linalg.norm(tip - entry))
    if path < 3.0:
        return None
    length = float(np.clip(np.ceil((path + 15.0) / 10.0) * 10.0, 50.0, 200.0))
    if path > length:
        return None
    return Needle.from_entry_and_target(entry, tip, gauge=gauge, length_mm=length)


# ---- ultrasound ----------------------------------------------------------------------------
def _plan_us(patient: Patient, region: str, rng: np.random.Generator, seed: int):
    """One random in-plane set-up: (imager, scene without needle, needle, params) or None
    when the draw is unusable (tip outside the sector, no skin entry, ...)."""
    from needleguide.us import USImager, make_settings
    from needleguide.us.views import standard_view

    views = US_VIEWS[region]
    name, level = views[int(rng.integers(len(views)))]
    side = ("right", "left")[int(rng.integers(2))]
    v = standard_view(patient, name, level=level, side=side)
    nside = float(rng.choice([-1.0, 1.0]))  # needle enters beyond the -x or +x end
    angle = float(rng.uniform(15.0, 70.0))
    spec_probe = v.probe
    steer = 0.0
    if spec_probe == "linear" and rng.random() < 0.5:
        # steer toward the side the needle enters from (nside): the beams turn toward
        # perpendicular to the shaft and its echo brightens, as a sonographer steers; ≤ 20°
        steer = float(nside * min(20.0, 0.5 * angle) * rng.uniform(0.5, 1.0))
    kw = dict(probe=spec_probe, depth_mm=v.depth_mm,
              frequency_mhz=float(rng.uniform(*(
                  (7.0, 12.0) if spec_probe == "linear" else (2.5, 5.0)))),
              gain_db=float(rng.uniform(-6.0, 6.0)),
              dynamic_range_db=float(rng.uniform(50.0, 70.0)), steer_deg=steer,
              focus_mm=float(np.clip(v.target_depth_mm, 5.0, 0.95 * v.depth_mm)))
    s = make_settings(**kw)
    img = USImager(s, seed=seed)
    st = img.setup
    half = s.spec.width_mm / 2 if s.probe == "linear" else \
        s.spec.radius_mm * np.sin(s.spec.sector_rad / 2)
    x_e = nside * (half + rng.uniform(2.0, 10.0))
    depth = float(rng.uniform(0.15, 0.8) * v.depth_mm)
    x_t = x_e - nside * depth / np.tan(np.radians(angle))
    tip_p = np.array([x_t, depth, rng.uniform(-0.3, 0.3)])
    c, r = (x_t - st.x0_mm) / st.spacing_mm, (depth - st.y0_mm) / st.spacing_mm
    ci, ri = int(round(c)), int(round(r))
    if not (4 <= ci < st.cols - 4 and 4 <= ri < st.rows - 4):
        return None
    mx = st.map_x[ri, ci]
    if not (0 <= mx < len(st.geom.r_mm) - 1 and 0 <= st.map_y[ri, ci] <= st.geom.n_lines - 1):
        return None  # outside the field of view
    P2P = v.ProbeToPatient
    tip = geometry.apply(P2P, tip_p)
    d_p = np.array([x_e - x_t, -depth, rng.uniform(-0.3, 0.3)])
    out_dir = geometry.apply_vector(P2P, d_p / np.linalg.norm(d_p))
    entry = skin_entry_along(patient, tip, out_dir)
    if entry is None:
        return None
    tip = stop_before_bone(patient, entry, tip)
    nd = _needle(entry, tip, int(rng.choice([20, 21, 22, 25])))
    if nd is None:
        return None
    params = {"region": region, "view": name, "level": v.level, "side": side,
              "insertion_angle_deg": angle, "tip_depth_mm": float(depth),
              "gauge": nd.gauge, **{k: kw[k] for k in ("frequency_mhz", "gain_db",
                                                       "dynamic_range_db", "steer_deg")}}
    return img, Scene(patient, poses={"ProbeToPatient": P2P}), nd, params


def first_us_plan(patient: Patient, region: str, seed: int, tries: int = 50):
    """The first usable :func:`_plan_us` set-up of seeds ``seed``, ``seed + 1``, … (each
    its own random stream; the benchmarks' fixed views): (imager, scene, needle, params),
    or None after ``tries``."""
    for k in range(tries):
        plan = _plan_us(patient, region, np.random.default_rng(seed + k), seed + k)
        if plan is not None:
            return plan
    return None


def benchmark_us_plan(seed: int):
    """The benchmarks' fixed needle view of ``seed``: its phantom (cervical when seed mod
    1000 ≥ 700, else lumbar; BMI 26, degeneration 1, 1.5 mm) and :func:`first_us_plan`
    on it: (region, (imager, scene, needle, params) or None)."""
    from needleguide.anatomy.phantom import build_phantom

    region = "cervical" if seed % 1000 >= 700 else "lumbar"
    p = build_phantom(region, bmi=26, degeneration=1, seed=seed, spacing_mm=1.5)
    return region, first_us_plan(p, region, seed)


def _usable(f: Frame, spacing_mm: float) -> bool:
    tr = f.truth
    if tr is None or tr.tip_px is None or tr.shaft_px is None:
        return False
    (c0, r0), (c1, r1) = tr.shaft_px
    return bool(np.hypot(c1 - c0, r1 - r0) * spacing_mm >= 3.0)


def us_cases(patient: Patient, region: str, rng: np.random.Generator, n: int,
             seed: int) -> Iterator[Case]:
    """``n`` in-plane needle frames (and as many needle-free frames) on ``patient``."""
    made = tries = 0
    while made < n and tries < 20 * n:
        tries += 1
        plan = _plan_us(patient, region, rng, seed + tries)
        if plan is None:
            continue
        img, scene, nd, params = plan
        scene = scene.with_time(made * 0.05)
        f = img.render(scene.with_needle(nd))
        if not _usable(f, img.setup.spacing_mm):
            continue
        yield Case(f, True, params)
        f0 = img.render(scene.with_time(scene.time_s + 0.025))
        yield Case(f0, False, {**params, "needle": False})
        made += 1


def us_sequence(patient: Patient, region: str, rng: np.random.Generator, seed: int,
                frames: int = 12, rate_hz: float = 15.0) -> list[Case]:
    """An in-plane needle advanced over the last 40% of its path in ``frames`` frames at
    ``rate_hz`` (for the tracker); frames whose tip is outside the image are dropped."""
    for k in range(50):
        plan = _plan_us(patient, region, rng, seed + 1000 + k)
        if plan is None:
            continue
        img, scene, nd, params = plan
        total = nd.inserted_length_mm
        start = nd.advanced(-0.4 * total)
        out = []
        for i in range(frames):
            ndi = start.advanced(0.4 * total * (i + 1) / frames)
            f = img.render(scene.with_needle(ndi).with_time(i / rate_hz))
            if _usable(f, img.setup.spacing_mm):
                out.append(Case(f, True, {**params, "frame": i}))
        if len(out) >= frames // 2:
            return out
    return []


# ---- fluoroscopy ---------------------------------------------------------------------------
def _fl_target(patient: Patient, rng: np.random.Generator) -> np.ndarray:
    lvls = [lv for lv in ("L3-L4", "L4-L5", "L5-S1", "C5-C6", "C6-C7")
            if all(x in patient.vertebrae for x in lv.split("-"))]
    lv = lvls[int(rng.integers(len(lvls)))]
    side = ("right", "left")[int(rng.integers(2))]
    names = [t.format(lv=lv, v=lv.split("-")[0], side=side) for t in FL_TARGETS]
    names = [x for x in names if x in patient.landmarks]
    if names:
        p = patient.landmark(names[int(rng.integers(len(names)))])
    else:
        p = np.asarray(patient.vertebrae[lv.split("-")[0]].center_mm, float)
    return p + rng.normal(0.0, 4.0, 3), lv


def fluoro_cases(patient: Patient, rng: np.random.Generator, n: int, seed: int,
                 kvp: float = 75.0) -> Iterator[Case]:
    """``n`` fluoroscopy frames with a needle (and as many without) on ``patient``."""
    from needleguide.fluoro import Fluoroscope, make_settings, named_view

    base = make_settings(kvp=kvp, temporal_filter=1.0)
    fl = Fluoroscope(patient, base, seed=seed)
    made = tries = 0
    post = np.array([0.0, -1.0, 0.0])  # prone patient: needles come from the back
    while made < n and tries < 20 * n:
        tries += 1
        tgt, lv = _fl_target(patient, rng)
        view = FL_VIEWS[int(rng.integers(len(FL_VIEWS)))]
        carm = named_view(patient, view, lv, geometry_=base.geometry)
        b = carm.beam
        # needle direction (hub -> tip): from the back, at phi to the beam line
        phi = np.radians(rng.uniform(20.0, 85.0))
        u, v, _ = carm.axes
        psi = rng.uniform(0.0, 2 * np.pi)
        perp = np.cos(psi) * u + np.sin(psi) * v
        dirs = [np.cos(phi) * s_ * b + np.sin(phi) * perp for s_ in (1.0, -1.0)]
        dirs = [d for d in dirs if d @ post < -0.25]  # pointing anterior
        if not dirs:
            continue
        d = dirs[0] / np.linalg.norm(dirs[0])
        entry = skin_entry_along(patient, tgt, -d)
        if entry is None:
            continue
        tip = entry + (tgt - entry) * rng.uniform(0.35, 1.0)
        tip = stop_before_bone(patient, entry, tip)
        nd = _needle(entry, tip, int(rng.choice([20, 22, 25])))
        if nd is None:
            continue
        mode = "spot" if rng.random() < 0.3 else "pulsed"
        fl.settings = base.model_copy(update={
            "ma": float(rng.uniform(2.0, 12.0)),
            "display": ("white-bone", "black-bone")[int(rng.integers(2))],
            "edge_enhance": float(rng.uniform(0.3, 1.0))})
        sc = Scene(patient, time_s=made * 0.1)
        f = fl.frame(sc.with_needle(nd), mode, carm)
        tr = f.truth
        npx = carm.geometry.pixels
        if tr is None or not tr.needle_visible or tr.tip_px is None:
            continue
        tip_px = np.asarray(tr.tip_px)
        if np.any(tip_px < 8) or np.any(tip_px > npx - 9):
            continue
        ent_px = carm.project(nd.skin_entry_mm)
        if np.hypot(*(ent_px - tip_px)) < 15.0:  # shaft shorter than 15 px projected
            continue
        params = {"view": view, "level": lv, "mode": mode, "kvp": kvp,
                  "ma": fl.settings.ma, "display": fl.settings.display,
                  "angle_to_beam_deg": float(np.degrees(phi)), "gauge": nd.gauge,
                  "inserted_mm": nd.inserted_length_mm}
        yield Case(f, True, params)
        f0 = fl.frame(sc.with_time(sc.time_s + 0.05), mode, carm)
        yield Case(f0, False, {**params, "needle": False})
        made += 1


def shaft_angle_deg(shaft_px) -> float:
    """Orientation (0–180°) of a shaft given as ((c0, r0), (c1, r1)) pixels, measured from
    the image horizontal (columns), counter-clockwise on screen."""
    (c0, r0), (c1, r1) = shaft_px
    return float(np.degrees(np.arctan2(-(r1 - r0), c1 - c0)) % 180.0)


__all__ = ["Case", "benchmark_us_plan", "first_us_plan", "fluoro_cases", "shaft_angle_deg",
           "skin_entry_along", "stop_before_bone", "us_cases", "us_sequence"]
