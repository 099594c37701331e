"""Neck soft tissue: skin, subcutaneous fat (from BMI) and the posterior muscle block as a
fast layered body pass; SCM, scalenes, levator scapulae, longus colli, strap muscles;
airway (pharynx, larynx, trachea), oesophagus, thyroid, hyoid and lung apices as strokes.

Axial sections are interpolated between the vertebral levels (``SectionColumn`` strokes,
a few interpolations per voxel). Lean (fat-free) neck sections per level are *assumptions*
chosen so that the neck circumference at C6 is ~37 cm at BMI 25 (Ben-Noun et al., Obes Res
2001;9:470: 37 cm men ↔ BMI 25, 39.5 cm ↔ BMI 30).

BMI mapping (documented in docs/anatomy_cervical.md): neck circumference
NC = 370 + 5·(BMI − 25) mm (Ben-Noun's slope 0.5 cm per kg/m²); the lean section grows
0.4 % per BMI unit (muscle, assumption); the fat layer thickness t fills the difference,
t = (NC − P_lean)/(2π) − skin, at least 1.5 mm, laid on as 1.3 t behind, t at the sides
and 0.7 t in front (nuchal fat thicker, assumption).
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.phantom.body import COLS, BodyLayers
from needleguide.anatomy.phantom.cervical_geom import SectionColumn, SpineLayout, tube
from needleguide.anatomy.phantom.cervical_vertebra import LAB, SIDES
from needleguide.anatomy.phantom.painter import Stroke
from needleguide.anatomy.phantom.sdf import Box, Ellipsoid, Subtract, Union

SKIN_MM = 1.6
# lean section per level: half width a0, half depth b0, centre offset from the body centre (y)
LEAN = {"T2": (68.0, 58.0, -13.5), "T1": (61.0, 58.0, -9.5), "C7": (54.0, 57.5, -7.0),
        "C6": (50.0, 54.0, -3.6), "C5": (48.0, 51.5, -3.0), "C4": (48.0, 51.0, -1.5),
        "C3": (49.0, 53.0, 0.5), "C2": (54.0, 63.0, -5.0), "C1": (59.0, 69.0, -8.0)}
SCM_ANGLE = {"C1": 95.0, "C2": 85.0, "C3": 72.0, "C4": 60.0, "C5": 50.0, "C6": 42.0,
             "C7": 32.0, "T1": 22.0, "T2": 14.0}
ORDER = ("T2", "T1", "C7", "C6", "C5", "C4", "C3", "C2", "C1")


def ellipse_perimeter(a: float, b: float) -> float:
    """Ramanujan's approximation of an ellipse perimeter (mm)."""
    h = ((a - b) / (a + b)) ** 2
    return float(np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h))))


def neck_circumference_mm(bmi: float) -> float:
    """Neck circumference at C6 from BMI (Ben-Noun 2001 anchors, slope 0.5 cm per unit)."""
    return 370.0 + 5.0 * (bmi - 25.0)


def lean_scale(bmi: float) -> float:
    """Lean section scale with BMI (muscle; assumption, 0.4 % per unit, clipped)."""
    return float(np.clip(1.0 + 0.004 * (bmi - 25.0), 0.95, 1.12))


def fat_thickness_mm(bmi: float) -> float:
    """Subcutaneous fat thickness (mm, mean around the neck at C6) for a BMI."""
    a, b, _ = LEAN["C6"]
    k = lean_scale(bmi)
    t = (neck_circumference_mm(bmi) - ellipse_perimeter(a * k, b * k)) / (2 * np.pi) - SKIN_MM
    return float(max(t, 1.5))


class NeckSections:
    """Control rows (z, x, y, a, b) of the lean neck section and helpers."""

    def __init__(self, lay: SpineLayout, bmi: float):
        k = lean_scale(bmi)
        lv = lay.levels
        rows = []
        for n in ORDER:
            c = lv[n].center
            a, b, off = LEAN[n]
            rows.append((c[2], c[0], c[1] + off, a * k, b * k))
        c1 = lv["C1"]
        top = c1.P(0, 0, 48.0)
        rows.append((top[2], top[0], top[1] - 6.0, 70.0 * k, 86.0 * k))
        t2 = lv["T2"]
        bot = t2.P(0, 0, -30.0)
        a, b, off = LEAN["T2"]
        rows.insert(0, (bot[2], bot[0], bot[1] + off, a * k, b * k))
        self.rows = np.array(rows)
        self.t = fat_thickness_mm(bmi)
        self.lay = lay

    def column(self, grow: float = 0.0, dy: float = 0.0) -> SectionColumn:
        z, x, y, a, b = self.rows.T
        return SectionColumn(z, x, y + dy, a, b, z_lo=z[0], z_hi=z[-1], grow_mm=grow)

    def lean_point(self, n: str, angle_deg: float, s: int, inset: float) -> np.ndarray:
        """Point ``inset`` mm inside the lean surface at angle (0 = anterior midline) on
        side s, at the height of level n."""
        lv = self.lay.levels[n]
        c = lv.center
        a, b, off = LEAN[n]
        th = np.radians(angle_deg)
        return np.array([s * (a - inset) * np.sin(th), c[1] + off + (b - inset) * np.cos(th), c[2]])


def body_layers(ns: NeckSections) -> BodyLayers:
    """Skin, subcutaneous fat, the posterior muscle block and the soft-tissue interior as
    one fast layered pass (:mod:`needleguide.anatomy.phantom.body`): the lean section is
    the core outline; fat is 1.3 t behind, t at the sides and 0.7 t in front (nuchal fat
    thicker, assumption); core voxels behind the transverse processes (|x| < x_back) are
    the posterior extensor muscles (trapezius, splenius, semispinalis, multifidus)."""
    t = ns.t
    lv = ns.lay.levels
    back = []  # (y_back, x_back) per row of ns.rows
    for n in ORDER:
        L = lv[n]
        D = L.D if n != "C1" else 16.0
        back.append((L.P(0.0, -D / 2 - 6.0, 0.0)[1], 50.0 if n in ("T1", "T2") else 40.0))
    back.insert(0, back[0])
    back.append((lv["C1"].P(0.0, -24.0, 40.0)[1], 56.0))
    z, x, y, a, b = ns.rows.T
    yb, xb = np.array(back).T
    one, zero = np.ones_like(z), np.zeros_like(z)
    cols = {"cx": x, "cy": y, "ax": a, "ay_post": b, "ay_ant": b, "w_post": one, "w_ant": one,
            "t_post": 1.3 * t * one, "t_lat": t * one, "t_ant": 0.7 * t * one, "wall": zero,
            "y_back": yb, "core_muscle": zero, "x_back": xb}
    table = np.column_stack([cols.get(c, zero) for c in COLS])  # other columns: unused (0)
    return BodyLayers(z, table, skin_mm=SKIN_MM, skin_label=LAB("skin"),
                      fat_label=LAB("subcutaneous_fat"), wall_label=LAB("soft_tissue"),
                      back_label=LAB("neck_muscle"), core_label=LAB("soft_tissue"))


def _lv_tube(lay: SpineLayout, pts: list[tuple[str, tuple[float, float, float]]], r) -> Union:
    P = np.array([lay.levels[n].P(*p) for n, p in pts])
    return tube(P, np.broadcast_to(np.asarray(r, float), (len(P),)).copy())


def muscle_strokes(ns: NeckSections) -> list[Stroke]:
    """SCM, scalenes, levator scapulae and longus colli (the posterior extensors are the
    body layers' muscle block)."""
    lay = ns.lay
    lv = lay.levels
    mus, soft = LAB("neck_muscle"), (LAB("soft_tissue"),)
    out: list[Stroke] = []
    for s in SIDES.values():
        # sternocleidomastoid: flat band (two tubes side by side) under the fat
        P, Q = [], []
        for n in ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2"):
            th = SCM_ANGLE[n]
            p = ns.lean_point(n, th, s, 6.0)
            tang = np.array([s * np.cos(np.radians(th)), -np.sin(np.radians(th)), 0.0])
            P.append(p + 7.0 * tang)
            Q.append(p - 7.0 * tang)
        r = np.array([6.0, 6.0, 5.8, 5.5, 5.2, 5.0, 4.8, 4.5, 4.0])
        mid = (np.array(P) + np.array(Q)) / 2
        out += [Stroke(tube(np.array(P), r * 0.85), mus, only_into=soft),
                Stroke(tube(np.array(Q), r * 0.85), mus, only_into=soft),
                Stroke(tube(mid, r), mus, only_into=soft)]
        W = {n: lv[n].W for n in lv}
        Dh = {n: lv[n].D / 2 for n in lv}
        out.append(Stroke(_lv_tube(lay, [  # anterior scalene
            ("C4", (s * (W["C4"] / 2 + 13.0), -Dh["C4"] + 9.0, 0.0)),
            ("C5", (s * (W["C5"] / 2 + 14.0), -Dh["C5"] + 10.0, 0.0)),
            ("C6", (s * (W["C6"] / 2 + 17.0), -Dh["C6"] + 13.0, -3.0)),
            ("C7", (s * (W["C7"] / 2 + 20.0), -Dh["C7"] + 15.0, -4.0)),
            ("T1", (s * 34.0, 16.0, -8.0)), ("T1", (s * 39.0, 19.0, -22.0))],
            [3.5, 4.0, 4.5, 5.0, 5.5, 5.5]), mus, only_into=soft))
        out.append(Stroke(_lv_tube(lay, [  # middle scalene
            ("C3", (s * (W["C3"] / 2 + 19.0), -Dh["C3"] - 5.0, 0.0)),
            ("C5", (s * (W["C5"] / 2 + 21.0), -Dh["C5"] - 5.0, 0.0)),
            ("C7", (s * (W["C7"] / 2 + 26.0), -Dh["C7"] - 4.0, 0.0)),
            ("T1", (s * 47.0, -4.0, -14.0))], [4.5, 5.5, 6.0, 6.0]), mus, only_into=soft))
        out.append(Stroke(_lv_tube(lay, [  # levator scapulae
            ("C1", (s * 38.0, -9.0, -2.0)),
            ("C3", (s * (W["C3"] / 2 + 24.0), -Dh["C3"] - 13.0, 0.0)),
            ("C5", (s * (W["C5"] / 2 + 29.0), -Dh["C5"] - 20.0, 0.0)),
            ("C7", (s * 46.0, -32.0, 0.0)), ("T2", (s * 55.0, -40.0, -10.0))],
            [5.0, 6.0, 6.5, 7.0, 7.0]), mus, only_into=soft))
        # longus colli / capitis: two bands per side on the front of the bodies
        for u, dv, r in ((4.5, 2.4, 2.6), (8.0, 2.1, 2.8), (11.5, 1.3, 2.8)):
            pts = [("C1", (s * (u + 2.0), 14.0, 14.0)), ("C1", (s * (u + 1.0), 13.0, 0.0))]
            pts += [(n, (s * u, lv[n].D / 2 + dv, 0.0)) for n in
                    ("C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2")]
            out.append(Stroke(_lv_tube(lay, pts, r), LAB("longus_colli"),
                              only_into=(LAB("soft_tissue"), mus)))
    return out


def airway_columns(lay: SpineLayout) -> dict[str, SectionColumn]:
    """Air lumen (pharynx → larynx → trachea), laryngotracheal cartilage wall, pharyngeal
    constrictor wall and oesophagus as horizontal-section columns."""
    lv = lay.levels
    lum = {"C2": (12.0, 14.0, 5.0), "C3": (14.0, 13.0, 5.5), "C4": (22.0, 7.0, 8.0),
           "C5": (24.0, 4.0, 7.0), "C6": (25.5, 7.5, 7.5), "C7": (25.0, 8.0, 8.5),
           "T1": (23.0, 8.5, 8.5), "T2": (21.0, 8.5, 8.5)}
    wall = {"C4": (16.0, 12.5), "C5": (14.5, 11.0), "C6": (10.5, 10.5), "C7": (10.5, 11.0),
            "T1": (11.0, 11.0), "T2": (11.0, 11.0)}
    z, cy, a, b, cx = [], [], [], [], []
    for n in ("T2", "T1", "C7", "C6", "C5", "C4", "C3", "C2"):
        dv, aa, bb = lum[n]
        c = lv[n].P(0, lv[n].D / 2 + dv, 0)
        z.append(c[2]), cy.append(c[1]), a.append(aa), b.append(bb), cx.append(c[0])
    z, cy, a, b, cx = (np.array(v) for v in (z, cy, a, b, cx))
    t2 = lv["T2"]
    zlo = t2.P(0, 0, -t2.H)[2]
    zc2 = lv["C2"].P(0, 0, lv["C2"].H / 2 + 6.0)[2]
    zc4 = lv["C4"].P(0, 0, 4.0)[2]
    out = {"lumen": SectionColumn(z, cx, cy, a, b, z_lo=zlo, z_hi=zc2)}
    wa = np.array([wall.get(n, (a[i] + 3.0, b[i] + 3.0))[0] for i, n in
                   enumerate(("T2", "T1", "C7", "C6", "C5", "C4", "C3", "C2"))])
    wb = np.array([wall.get(n, (a[i] + 3.0, b[i] + 3.0))[1] for i, n in
                   enumerate(("T2", "T1", "C7", "C6", "C5", "C4", "C3", "C2"))])
    out["cartilage"] = SectionColumn(z, cx, cy, wa, wb, z_lo=zlo, z_hi=zc4)
    out["pharynx"] = SectionColumn(z, cx, cy, a + 3.0, b + 3.0, z_lo=zc4 - 4.0, z_hi=zc2)
    # oesophagus: left of midline between trachea and spine, from C6 (cricopharyngeus)
    oz, ocx, ocy = [], [], []
    for n in ("T2", "T1", "C7", "C6", "C5"):
        c = lv[n].P(-5.0, lv[n].D / 2 + 8.5, 0)
        oz.append(c[2]), ocx.append(c[0]), ocy.append(c[1])
    oz, ocx, ocy = np.array(oz), np.array(ocx), np.array(ocy)
    zc5 = lv["C5"].P(0, 0, -2.0)[2]
    out["oesophagus"] = SectionColumn(oz, ocx, ocy, np.full(5, 9.0), np.full(5, 5.3),
                                      z_lo=zlo, z_hi=zc5)
    return out


def viscera_strokes(lay: SpineLayout) -> tuple[list[Stroke], dict[str, np.ndarray]]:
    """Thyroid, pharynx, oesophagus, larynx/trachea, strap muscles and lung apices."""
    lv = lay.levels
    cols = airway_columns(lay)
    out = []
    info = {}
    c6, c7, t1 = lv["C6"], lv["C7"], lv["T1"]
    for side, s in SIDES.items():
        c = (c6.P(s * 16.0, c6.D / 2 + 22.0, -9.0))
        T = c6.at(0, 0, 0)
        T[:3, 3] = c
        out.append(Stroke(Ellipsoid(T, radii=(7.0, 9.0, 21.0)), LAB("thyroid")))
        info[f"thyroid.{side}"] = c
        strap = SectionColumn(*_strap_rows(lay, s), z_lo=lv["T2"].center[2] - 10,
                              z_hi=lv["C4"].center[2])
        out.append(Stroke(strap, LAB("neck_muscle"), only_into=(LAB("soft_tissue"),)))
        out.append(Stroke(Ellipsoid(lv["T2"].at(s * 36.0, 2.0, -34.0), radii=(24.0, 30.0, 42.0)),
                          LAB("internal_air")))
    out.append(Stroke(Box(t1.at(0, t1.D / 2 + 23.0 + 11.5, 6.0), half_mm=(10.0, 2.2, 6.0),
                          round_mm=1.5), LAB("thyroid")))
    out.append(Stroke(cols["pharynx"], LAB("oesophagus")))
    out.append(Stroke(cols["oesophagus"], LAB("oesophagus")))
    cart = cols["cartilage"]
    out.append(Stroke(cart, LAB("soft_tissue")))  # laryngeal soft tissue
    out.append(Stroke(Subtract(cart, cart.grown(-2.5)), LAB("trachea_wall")))
    out.append(Stroke(cols["lumen"], LAB("internal_air")))
    c3 = lv["C3"]  # hyoid: body in front of the epiglottis, greater horns backwards
    hy = [c3.P(s * u, c3.D / 2 + dv, 2.0) for s, u, dv in
          ((-1, 18.0, 19.0), (-1, 12.0, 26.5), (1, 0.0, 30.0), (1, 12.0, 26.5), (1, 18.0, 19.0))]
    out.append(Stroke(tube(np.array(hy), np.array([1.3, 2.0, 2.6, 2.0, 1.3])),
                      LAB("bone_cortical")))
    info["trachea.C7"] = c7.P(0, c7.D / 2 + 25.0, 0)
    return out, info


def _strap_rows(lay: SpineLayout, s: int):
    rows = []
    for n, dv in (("T2", 35.0), ("T1", 37.5), ("C7", 40.0), ("C6", 40.0), ("C5", 39.0),
                  ("C4", 38.0)):
        c = lay.levels[n].P(s * 13.0, lay.levels[n].D / 2 + dv, 0)
        rows.append((c[2], c[0], c[1], 10.0, 2.6))
    z, x, y, a, b = np.array(rows).T
    return z, x, y, a, b
