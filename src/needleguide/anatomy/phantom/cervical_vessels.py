"""Cervical vessels as centerlines (flow order) and painted lumens.

Vertebral arteries: from the subclavian, anterior to the C7 transverse process, into the
C6 transverse foramen, up through C6–C1, round the atlas lateral mass over its posterior
arch and through the foramen magnum (Bruneau et al.; the classic V1–V4 segments). Common
carotid → internal carotid (bifurcation at C3–C4), external carotid branch; internal
jugular vein lateral to the carotid (distal → central). Radicular branches of the
vertebral artery enter the C4–C7 intervertebral foramina (anterior to the root).

Radii (mm): CCA 3.4, ICA 2.6, ECA 2.1, VA 1.9 (left) / 1.8 (right), IJV 6.0 (right) / 5.0
(left), radicular 0.5 — typical adult ultrasound values. Mean velocities are *assumptions*
(typical time-averaged mean velocities on duplex ultrasound, not a cited table): CCA 250,
ICA 250, ECA 180, VA 150, IJV 150 (towards the heart), radicular 50 mm/s.
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.patient import Centerline
from needleguide.anatomy.phantom.cervical_geom import SpineLayout, tube
from needleguide.anatomy.phantom.cervical_vertebra import BONE, LAB, SIDES, tp_w, transverse_foramen
from needleguide.anatomy.phantom.painter import Stroke

VELOCITY_MM_S = {"carotid": 250.0, "internal_carotid": 250.0, "external_carotid": 180.0,
                 "vertebral_artery": 150.0, "internal_jugular": 150.0, "radicular_artery": 50.0}


def vertebral_path(lay: SpineLayout, s: int) -> np.ndarray:
    """Vertebral artery centre line (N, 3) RAS, proximal → distal."""
    lv = lay.levels
    t1, c7, c1 = lv["T1"], lv["C7"], lv["C1"]
    pts = [t1.P(s * 26.0, t1.D / 2 + 14.0, -4.0), t1.P(s * 20.0, t1.D / 2 + 9.0, 6.0),
           c7.P(s * (c7.W / 2 + 5.5), c7.D / 2 + 3.5, 0.0)]
    for n in ("C6", "C5", "C4", "C3", "C2"):
        L = lv[n]
        fu, fv, _ = transverse_foramen(L)
        wc = tp_w(L) if n != "C2" else -1.0
        pts += [L.P(s * fu, fv, wc - 4.0), L.P(s * fu, fv, wc), L.P(s * fu, fv, wc + 4.0)]
    c2 = lv["C2"]
    fu, fv, _ = transverse_foramen(c2)
    pts.append(c2.P(s * (fu + 4.0), fv - 0.5, 5.0))
    pts += [c1.P(s * 27.0, -4.0, -5.0), c1.P(s * 27.0, -4.0, 0.0), c1.P(s * 27.0, -4.0, 5.0),
            c1.P(s * 26.0, -10.0, 7.5), c1.P(s * 21.0, -17.0, 7.0), c1.P(s * 13.0, -22.0, 7.0),
            c1.P(s * 8.0, -16.0, 14.0), c1.P(s * 4.5, -5.0, 22.0), c1.P(s * 1.8, 5.0, 32.0)]
    return np.array(pts)


def carotid_paths(lay: SpineLayout, s: int) -> dict[str, np.ndarray]:
    lv = lay.levels
    c1 = lv["C1"]
    f = {n: lv[n].D / 2 for n in lv}
    cca = [lv[n].P(s * u, f[n] + dv, 0.0) for n, u, dv in
           (("T2", 18.0, 16.0), ("T1", 20.0, 13.0), ("C7", 21.0, 11.0), ("C6", 22.0, 10.0),
            ("C5", 22.5, 9.5), ("C4", 23.0, 9.0))]
    c34 = lay.discs["C3-C4"]
    bif = c34[:3, :3] @ np.array([s * 23.0, f["C4"] + 8.5, 0.0]) + c34[:3, 3]
    cca.append(bif)
    ica = [bif, lv["C3"].P(s * 25.0, f["C3"] + 5.0, 0.0), lv["C2"].P(s * 26.0, f["C2"] + 2.0, 0.0),
           c1.P(s * 27.0, 11.0, 0.0), c1.P(s * 28.0, 12.0, 20.0)]
    eca = [bif, lv["C3"].P(s * 20.0, f["C3"] + 14.0, 0.0),
           lv["C2"].P(s * 23.0, f["C2"] + 19.0, 0.0),
           c1.P(s * 30.0, 25.0, 2.0)]
    ijv = [c1.P(s * 34.0, 4.0, 20.0), c1.P(s * 37.0, 8.0, 0.0)]
    ijv += [lv[n].P(s * u, f[n] + dv, 0.0) for n, u, dv in
            (("C2", 34.0, 3.0), ("C3", 33.0, 7.0), ("C4", 32.5, 10.0), ("C5", 32.0, 12.0),
             ("C6", 32.0, 13.0), ("C7", 30.0, 15.0), ("T1", 27.0, 18.0), ("T2", 24.0, 20.0))]
    # common + internal carotid as one polyline "carotid"
    return {"carotid": np.array(cca + ica[1:]), "external_carotid": np.array(eca),
            "internal_jugular": np.array(ijv), "_ica_start": np.array([len(cca) - 1])}


def vessel_strokes(lay: SpineLayout, rng: np.random.Generator
                   ) -> tuple[list[Stroke], dict[str, Centerline]]:
    """Painted lumens (never into bone) and centerlines of the cervical vessels."""
    strokes, cls = [], {}
    va, car, ijl = LAB("vertebral_artery"), LAB("carotid"), LAB("internal_jugular")
    for side, s in SIDES.items():
        rva = (2.0 if s < 0 else 1.8) * float(rng.uniform(0.9, 1.1))
        P = vertebral_path(lay, s)
        R = np.full(len(P), rva)
        R[-3:] = rva * 0.9
        cls[f"vertebral_artery.{side}"] = Centerline(f"vertebral_artery.{side}", "artery", P, R, va,
                                                     VELOCITY_MM_S["vertebral_artery"])
        strokes.append(Stroke(tube(P, R), va, never_into=BONE))
        cp = carotid_paths(lay, s)
        k = int(cp["_ica_start"][0])
        P = cp["carotid"]
        R = np.where(np.arange(len(P)) <= k, 3.4, 2.6).astype(float)
        R[k] = 3.8  # carotid bulb
        cls[f"carotid.{side}"] = Centerline(f"carotid.{side}", "artery", P, R, car,
                                            VELOCITY_MM_S["carotid"])
        strokes.append(Stroke(tube(P, R), car, never_into=BONE))
        P = cp["external_carotid"]
        R = np.full(len(P), 2.1)
        cls[f"external_carotid.{side}"] = Centerline(f"external_carotid.{side}", "artery", P, R,
                                                     car, VELOCITY_MM_S["external_carotid"],
                                                     parent=f"carotid.{side}")
        strokes.append(Stroke(tube(P, R), car, never_into=BONE))
        P = cp["internal_jugular"]
        rj = (6.0 if s > 0 else 5.0) * float(rng.uniform(0.85, 1.15))
        R = np.full(len(P), rj)
        R[:2] = rj * 0.75
        cls[f"internal_jugular.{side}"] = Centerline(f"internal_jugular.{side}", "vein", P, R, ijl,
                                                     VELOCITY_MM_S["internal_jugular"])
        strokes.append(Stroke(tube(P, R), ijl, never_into=BONE))
        # radicular branches: from the VA between the foramina into the C4-C7 foramina
        for up, lo in (("C3", "C4"), ("C4", "C5"), ("C5", "C6"), ("C6", "C7")):
            L = lay.levels[lo]
            fu, fv, _ = transverse_foramen(L)
            a = L.P(s * fu, fv, L.H / 2 + 2.0) if lo != "C7" else \
                lay.levels["C6"].P(s * transverse_foramen(lay.levels["C6"])[0],
                                   transverse_foramen(lay.levels["C6"])[1], -4.0)
            b = L.P(s * (L.pillar_u - 1.0), -L.D / 2 - 1.0, L.H / 2 + 4.0)
            c = L.P(s * (L.canal_w / 2 - 1.0), -L.D / 2 - 1.5, L.H / 2 + 5.0)
            P = np.array([a, b, c])
            R = np.full(3, 0.5)
            name = f"radicular_artery.{up}-{lo}.{side}"
            cls[name] = Centerline(name, "artery", P, R, LAB("segmental_artery"),
                                   VELOCITY_MM_S["radicular_artery"],
                                   parent=f"vertebral_artery.{side}")
            strokes.append(Stroke(tube(P, np.full(3, 0.6)), LAB("segmental_artery"),
                                  never_into=BONE + (LAB("nerve_root"), LAB("drg"))))
    return strokes, cls
