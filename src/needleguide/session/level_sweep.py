"""A paramedian sagittal sweep for the US level count, and its truth (the evaluation of
the US level labeller, and the sonographer of a simulated session counting levels).

A curvilinear probe, paramedian sagittal oblique (beam tilted medially), slid from below
the sacrum up the laminae to the top of L1 in seeded steps with small tilt / offset jitter,
imaged by :class:`needleguide.us.USImager`. The truth of every frame is the level position
``u`` of its centre (the central beam at the lamina): 0 at the L5–S1 interlaminar space,
1 at L4–L5, … (piecewise linear between the interlaminar landmarks, negative over the
sacrum). This module reads the phantom; the analyser (:mod:`levels_us`) never does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.guidance.levels_us_count import INTERSPACES, SACRAL_LEVEL_MM
from needleguide.us.views import PARAMEDIAN_OFFSET_MM, PARAMEDIAN_TILT_DEG

LUMBAR = ("L5", "L4", "L3", "L2", "L1")


@dataclass
class Sweep:
    """Frames (caudal first), the truth level position of each frame centre, and the
    sweep parameters (JSON-able)."""

    frames: list
    u_true: np.ndarray
    centres_mm: np.ndarray  # (n, 3) frame centres (central beam at the lamina), patient mm
    info: dict = field(default_factory=dict)


def interlaminar_chain(p: Patient) -> np.ndarray:
    pts = []
    for name in INTERSPACES:
        lm = p.landmarks.get(f"{name}.interlaminar")
        if lm is None:
            break
        pts.append(np.asarray(lm.position_mm, float))
    if len(pts) < 3:
        raise ValueError("sweep: the patient lacks the lumbar interlaminar landmarks")
    return np.array(pts)


def level_position(chain: np.ndarray, x_mm: np.ndarray) -> float:
    """Level position of a point: projected on the chain of interlaminar points (index =
    level), linear within a segment, extrapolated beyond the cranial end; caudal of L5–S1
    minus the distance from it / ``SACRAL_LEVEL_MM`` (as the analyser counts it)."""
    x = np.asarray(x_mm, float)
    d0 = chain[1] - chain[0]
    if (x - chain[0]) @ d0 < 0:  # caudal of L5–S1 (the sacrum bends away): arc distance
        return -float(np.linalg.norm(x - chain[0])) / SACRAL_LEVEL_MM
    best = None
    for k in range(len(chain) - 1):
        d = chain[k + 1] - chain[k]
        t = float((x - chain[k]) @ d / (d @ d))
        dist = np.linalg.norm(x - (chain[k] + np.clip(t, 0, 1) * d))
        if k == 0:
            t = min(t, 1.0)
        elif k == len(chain) - 2:
            t = max(t, 0.0)
        else:
            t = float(np.clip(t, 0, 1))
        if best is None or dist < best[0] - 1e-9:
            best = (dist, k + t)
    return float(best[1])


def sweep_path(p: Patient, side: str, below_sacrum_mm: float = 45.0,
               lateral_mm: float | None = None) -> np.ndarray:
    """Points (caudal first, patient mm) of the paramedian line: on the sacrum
    ``below_sacrum_mm`` under L5–S1, the interlaminar spaces and laminae up to L1 (and the
    T12–L1 space), ``lateral_mm`` from the midline (default: the laminae's landmarks)."""
    s = 1.0 if side == "right" else -1.0
    chain = interlaminar_chain(p)
    lams = [p.landmarks.get(f"{v}.lamina.{side}") for v in LUMBAR]
    lam_x = [abs(float(lm.position_mm[0])) for lm in lams if lm is not None]
    off = float(np.mean(lam_x)) if lateral_mm is None and lam_x else (lateral_mm or 10.0)
    mid = float(np.mean([v.center_mm[0] for v in p.vertebrae.values()]))
    hiatus = p.landmarks.get("sacral_hiatus")
    down = (np.asarray(hiatus.position_mm, float) - chain[0]) if hiatus is not None \
        else chain[0] - chain[1]
    down = down / np.linalg.norm(down)
    pts = [chain[0] + below_sacrum_mm * down]
    for k, name in enumerate(LUMBAR):
        pts.append(chain[k])
        lm = p.landmarks.get(f"{name}.lamina.{side}")
        if lm is not None:
            pts.append(np.asarray(lm.position_mm, float))
    if len(chain) > len(LUMBAR):
        pts.append(chain[len(LUMBAR)])
    pts = np.array(pts)
    pts[:, 0] = mid + s * off
    return pts


def _resample(pts: np.ndarray, arc_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.r_[0.0, np.cumsum(seg)]
    xyz = np.stack([np.interp(arc_mm, cum, pts[:, j]) for j in range(3)], -1)
    # tangent from a smoothed path (± 15 mm)
    a0 = np.clip(arc_mm - 15.0, 0, cum[-1])
    a1 = np.clip(arc_mm + 15.0, 0, cum[-1])
    t = (np.stack([np.interp(a1, cum, pts[:, j]) for j in range(3)], -1)
         - np.stack([np.interp(a0, cum, pts[:, j]) for j in range(3)], -1))
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return xyz, t


def make_sweep(p: Patient, seed: int, side: str = "right", step_mm: float = 8.0,
               tilt_deg: float = PARAMEDIAN_TILT_DEG, jitter_deg: float = 2.0,
               jitter_mm: float = 2.0,
               probe: str = "curvilinear", output_px: int = 384,
               below_sacrum_mm: float = 45.0, lateral_mm: float = PARAMEDIAN_OFFSET_MM,
               max_tilt_deg: float = 8.0, length_mm: float | None = None) -> Sweep:
    """A paramedian sagittal oblique sweep (``tilt_deg`` medial, the plane ``lateral_mm``
    from the midline at the laminae), caudal to cranial, steps
    of ``step_mm`` ± 15 %, tilt ± ``jitter_deg`` and lateral offset ± ``jitter_mm``
    (uniform, from ``seed``); depth fixed for the sweep (deepest lamina + 35 mm). The beam
    stays perpendicular to the laminar line (the sonographer angles the probe for the
    brightest bone echo), tilted towards the skin normal by at most ``max_tilt_deg``.
    ``length_mm`` stops the sweep that far up the path (default: up to L1)."""
    from needleguide.scene import Scene
    from needleguide.us import USImager, make_settings
    from needleguide.us.probe import PROBES
    from needleguide.us.views import place_probe, preset_frequency_mhz

    rng = np.random.default_rng(seed)
    s = 1.0 if side == "right" else -1.0
    chain = interlaminar_chain(p)
    pts = sweep_path(p, side, below_sacrum_mm, lateral_mm)
    length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
    if length_mm is not None:
        length = min(length, float(length_mm))
    arcs = [0.0]
    while arcs[-1] < length:
        arcs.append(arcs[-1] + step_mm * float(rng.uniform(0.85, 1.15)))
    arcs = np.clip(np.array(arcs[:-1]), 0, length)
    xyz, tang = _resample(pts, arcs)
    R = np.array([1.0, 0.0, 0.0])
    poses, depths, u, centres = [], [], [], []
    for x, sup in zip(xyz, tang, strict=True):
        ant = np.cross(sup, R)
        ant /= np.linalg.norm(ant)
        tilt = np.deg2rad(tilt_deg + float(rng.uniform(-jitter_deg, jitter_deg)))
        x = x + R * s * float(rng.uniform(-jitter_mm, jitter_mm))
        beam = np.cos(tilt) * ant - np.sin(tilt) * s * R
        P2P, d = place_probe(p, x, beam, -sup, in_plane_only=True, max_tilt_deg=max_tilt_deg)
        poses.append(P2P)
        depths.append(d)
        u.append(level_position(chain, x))
        centres.append(x)
    spec = PROBES[probe]
    depth = float(np.clip(5 * np.ceil((max(depths) + 35.0) / 5), 20, spec.max_depth_mm))
    freq = preset_frequency_mhz(probe, float(np.median(depths)))
    imager = USImager(make_settings(probe=probe, frequency_mhz=freq, depth_mm=depth,
                                    output_px=output_px), seed=seed)
    scene = Scene(p)
    frames = []
    for i, P2P in enumerate(poses):
        frames.append(imager.render(scene.with_time(0.1 * i), P2P))
    info = {"side": side, "probe": probe, "frequency_mhz": round(freq, 2), "depth_mm": depth,
            "step_mm": step_mm, "tilt_deg": tilt_deg, "frames": len(frames)}
    return Sweep(frames, np.array(u), np.array(centres), info)
