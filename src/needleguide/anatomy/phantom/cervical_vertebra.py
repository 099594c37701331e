"""Subaxial cervical and upper thoracic vertebrae (C2–T2) as SDF strokes.

Local vertebral frame (see cervical_geom): u right, v anterior, w superior, origin at the
body centre. Parts: body with uncinate processes, pedicles, articular pillars (superior /
inferior articular processes) cut by the facet joint planes, facet joint space and capsule,
laminae, spinous processes (bifid C2–C6), transverse processes with anterior and posterior
tubercles, the gutter for the root and the transverse foramen (C2–C6 carry the vertebral
artery; C7's small foramen does not), discs, first ribs. Degeneration: disc height loss,
facet hypertrophy, end-plate osteophytes and uncinate spurs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide.anatomy.phantom.cervical_geom import (
    FACET_DEG,
    SUBAXIAL,
    Level,
    SpineLayout,
    _rot,
    tube,
)
from needleguide.anatomy.phantom.painter import Stroke
from needleguide.anatomy.phantom.sdf import (
    Box,
    Capsule,
    Ellipsoid,
    EllipticCylinder,
    HalfSpace,
    Intersect,
    Subtract,
    Union,
)
from needleguide.anatomy.tissues import default_tissue_table

LAB = default_tissue_table().label
BONE = tuple(default_tissue_table().labels_in_group("bone"))
SIDES = {"right": 1, "left": -1}


@dataclass(frozen=True)
class Degeneration:
    """Effect sizes of degeneration grade g (0–3); all *assumptions* scaled linearly."""

    grade: int

    @property
    def disc_loss(self) -> float:  # fraction of disc height lost
        return 0.15 * self.grade

    @property
    def facet_grow_mm(self) -> float:
        return 0.5 * self.grade

    @property
    def osteophyte_mm(self) -> float:
        return 0.8 * self.grade

    @property
    def joint_gap_mm(self) -> float:  # facet joint space incl. cartilage
        return 2.0 - 0.35 * self.grade

    @property
    def flavum_mm(self) -> float:
        return 0.5 * self.grade


def pillar_radii(lv: Level, deg: Degeneration) -> tuple[float, float]:
    g = deg.facet_grow_mm
    return 5.5 + g, 5.2 + g


def tp_w(lv: Level) -> float:
    """w of the transverse-process centre plane."""
    return 1.0


def transverse_foramen(lv: Level) -> tuple[float, float, float]:
    """(|u|, v, radius) of the transverse foramen in the level frame."""
    if lv.name == "C2":
        return lv.W / 2 + 5.5, -lv.D / 2 + 3.0, 3.1
    if lv.name == "C7":
        return lv.W / 2 + 6.0, -lv.D / 2 + 2.0, 1.8
    return lv.W / 2 + 6.5, -lv.D / 2 + 3.5, 3.1


def joint_plane(lay: SpineLayout, up: str, lo: str, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre (RAS) and unit normal (pointing from the lower SAP to the upper IAP, i.e.
    superior-posterior) of the facet joint between ``up`` and ``lo`` on side ``s``."""
    U, L = lay.levels[up], lay.levels[lo]
    Dj = lay.discs[f"{up}-{lo}"]
    pu = (U.pillar_u + L.pillar_u) / 2
    pv = (U.pillar_v + L.pillar_v) / 2
    b = np.radians(FACET_DEG[up])
    c = Dj[:3, :3] @ np.array([s * pu, pv, 0.5]) + Dj[:3, 3]
    n = Dj[:3, :3] @ np.array([0.0, -np.sin(b), np.cos(b)])
    return c, n


def _virtual_joint_below(lv: Level, s: int) -> tuple[np.ndarray, np.ndarray]:
    b = np.radians(FACET_DEG[lv.name])
    return lv.P(s * lv.pillar_u, lv.pillar_v, -lv.H / 2 - 2.5), lv.V(0, -np.sin(b), np.cos(b))


WAIST = 0.92  # pillar radius at its waist / nominal (concave waist, assumption)
FLARE = 1.08  # pillar radius at the articular surfaces / nominal


def pillar_shapes(lay: SpineLayout, name: str, s: int, deg: Degeneration):
    """(SAP, IAP, waist centre RAS, upper joint, lower joint) of the articular pillar of
    ``name`` on side ``s``. The pillar narrows to a waist between its facets (the
    'valleys' of the lateral pillar line on ultrasound, where the medial branch lies)."""
    order = list(SUBAXIAL)
    lv = lay.levels[name]
    ru, rv = pillar_radii(lv, deg)
    gap = deg.joint_gap_mm
    i = order.index(name)
    below = order[i + 1] if i + 1 < len(order) else None
    c_lo, n_lo = joint_plane(lay, name, below, s) if below else _virtual_joint_below(lv, s)
    if name == "C2":  # top of the C2 pars / inferior articular mass
        c_up, n_up = lv.P(s * lv.pillar_u, lv.pillar_v, lv.H / 2 - 1.0), lv.V(0, 0, 1)
    else:
        c_up, n_up = joint_plane(lay, order[i - 1], name, s)
    m = (c_up + c_lo) / 2
    inv = np.linalg.inv(lv.T)
    wm = float((inv[:3, :3] @ m + inv[:3, 3])[2])
    halves = []
    for sgn, c in ((1.0, c_up), (-1.0, c_lo)):  # SAP column upwards, IAP downwards
        dj = max(abs(float((inv[:3, :3] @ c + inv[:3, 3])[2]) - wm), 4.0)
        hh = (dj + 8.0) / 2
        ts = 1.0 + (FLARE / WAIST - 1.0) * 2 * hh / dj
        R = np.diag([1.0, sgn, sgn])  # flip (about u) for the downward column
        halves.append(EllipticCylinder(lv.at(s * lv.pillar_u, lv.pillar_v, wm + sgn * hh, R),
                                       radii=(ru * WAIST, rv * WAIST), half_height_mm=hh,
                                       top_scale=ts, round_mm=0.8))
    cuts = [HalfSpace(c_up - n_up * gap / 2, n_up), HalfSpace(c_lo + n_lo * gap / 2, -n_lo)]
    nm = (n_up + n_lo) / np.linalg.norm(n_up + n_lo)
    sap = Intersect([halves[0]] + cuts + [HalfSpace(m, -nm)])
    iap = Intersect([halves[1]] + cuts + [HalfSpace(m, nm)])
    return sap, iap, m, (c_up, n_up), (c_lo, n_lo)


def plate(lv: Level, a, b, height_dir, height_mm: float, thick_mm: float,
          ext_mm: float = 1.5, round_mm: float = 1.0) -> Box:
    """A box from local point a to b (long axis), ``height_mm`` along ``height_dir``."""
    pa, pb = lv.P(*a), lv.P(*b)
    x = pb - pa
    L = float(np.linalg.norm(x))
    x /= L
    y = lv.V(*height_dir)
    y = y - x * (x @ y)
    y /= np.linalg.norm(y)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, np.cross(x, y), (pa + pb) / 2
    return Box(T, half_mm=(L / 2 + ext_mm, height_mm / 2, thick_mm / 2), round_mm=round_mm)


def vertebra_strokes(lay: SpineLayout, name: str, deg: Degeneration) -> dict[str, list[Stroke]]:
    """Strokes of one vertebra C2–T2 by phase ('bone', 'joint', 'capsule'), plus extra
    geometry in ``lv.info`` (pedicle/pillar centres, spinous tip, foramen centres)."""
    lv = lay.levels[name]
    W, D, H = lv.W, lv.D, lv.H
    out: dict[str, list[Stroke]] = {"bone": [], "joint": [], "capsule": []}
    bone = out["bone"]
    body = LAB("vertebral_body")
    # body: rounded rectangle with a flat posterior wall and a convex anterior surface
    bone.append(Stroke(Intersect([Box(lv.T, half_mm=(W / 2, D / 2, H / 2), round_mm=2.0),
                                  EllipticCylinder(lv.T, radii=(W / 2 * 1.2, D / 2 * 1.3),
                                                   half_height_mm=H / 2 + 1.0)]), body))
    o = deg.osteophyte_mm
    if o > 0:
        for sgn in (1, -1):
            bone.append(Stroke(EllipticCylinder(lv.at(0, 0.4 * o, sgn * (H / 2 - 0.9)),
                                                radii=(W / 2 + o, D / 2 + o),
                                                half_height_mm=0.9, round_mm=0.4), body))
    wtp = tp_w(lv)
    fu, fv, fr = transverse_foramen(lv)
    pu, pv = lv.pillar_u, lv.pillar_v
    info = lv.info
    for side, s in SIDES.items():
        if name in ("C3", "C4", "C5", "C6", "C7"):  # uncinate process (+ spur)
            bone.append(Stroke(Capsule(lv.P(s * (W / 2 - 1.3), -D / 2 + 1.5, H / 2 + 0.2),
                                       lv.P(s * (W / 2 - 1.3), D / 2 - 5.0, H / 2 + 0.2), 1.6),
                               body))
            if deg.grade > 0:  # posterolateral spur narrowing the foramen
                r = 0.5 + 0.5 * deg.grade
                bone.append(Stroke(Ellipsoid(lv.at(s * (W / 2 - 0.2), -D / 2 + 0.6, H / 2 + 0.8),
                                             radii=(r, r, 0.8 * r)), body))
        # pedicle
        if name in ("T1", "T2"):
            a = (s * (W / 2 - 2.5), -D / 2 + 1.5, 2.0)
            b = (s * (lv.canal_w / 2 + 2.5), pv + 3.0, 2.0)
        elif name == "C2":
            a, b = (s * (W / 2 - 1.5), -D / 2 + 1.0, 2.0), (s * pu, pv + 2.0, 0.0)
        else:
            a, b = (s * (W / 2 - 1.5), -D / 2 + 1.5, 1.5), (s * (pu - 3.0), pv + 4.0, 1.5)
        rp = 3.5 if name == "C2" else 2.8
        bone.append(Stroke(Capsule(lv.P(*a), lv.P(*b), rp), LAB("pedicle")))
        info[f"pedicle.{side}"] = ((lv.P(*a) + lv.P(*b)) / 2).round(2).tolist()
        # articular pillar
        sap, iap, waist, up_j, lo_j = pillar_shapes(lay, name, s, deg)
        bone.append(Stroke(sap, LAB("superior_articular_process")))
        bone.append(Stroke(iap, LAB("inferior_articular_process")))
        info[f"pillar.{side}"] = waist.round(2).tolist()
        info[f"_joint_below.{side}"] = lo_j
        info[f"_joint_above.{side}"] = up_j
        # lamina (shingled: inferior edge posterior)
        tl = 4.0 if name == "C2" else 3.0
        hl = 11.0 if name in ("C2", "T1", "T2") else 9.5
        bone.append(Stroke(plate(lv, (s * (pu - 3.5), pv - 3.0, -1.0),
                                 (0.0, -D / 2 - lv.canal_d - 1.6, -1.5),
                                 (0.0, np.sin(np.radians(30)), np.cos(np.radians(30))), hl, tl),
                           LAB("lamina")))
        # transverse process
        tp = LAB("transverse_process")
        if name in ("T1", "T2"):
            a = lv.P(s * pu, pv, 1.0)
            b = lv.P(s * (pu + 15.0), pv - 7.0, 2.0)
            bone.append(Stroke(Capsule(a, b, 4.2, 3.6), tp))
            bone.append(Stroke(Ellipsoid(lv.at(s * (pu + 15.0), pv - 7.0, 2.0),
                                         radii=(4.2, 4.5, 5.0)), tp))
            info[f"tp_tip.{side}"] = b.round(2).tolist()
            continue
        hw = 3.0
        wc = -1.0 if name == "C2" else wtp
        if name == "C2":
            u0, u1, v0, v1 = W / 2 - 1.0, W / 2 + 11.5, fv - fr - 1.6, fv + fr + 1.8
        elif name == "C7":  # long, no anterior tubercle, small foramen (no artery)
            u0, u1, v0, v1 = W / 2 - 1.0, W / 2 + 24.0, -D / 2 - 4.0, -D / 2 + 4.5
        else:  # ring round the foramen (anterior and posterior roots)
            u0, u1, v0, v1 = W / 2 - 1.0, fu + fr + 1.6, fv - fr - 1.6, fv + fr + 1.6
        parts = [Box(lv.at(s * (u0 + u1) / 2, (v0 + v1) / 2, wc),
                     half_mm=((u1 - u0) / 2, (v1 - v0) / 2, hw), round_mm=1.5)]
        if name in ("C3", "C4", "C5", "C6"):  # intertubercular lamella (gutter floor)
            la, lb, lc, ld = fu, W / 2 + 16.5, -D / 2 - 5.0, -D / 2 + 8.0
            parts.append(Box(lv.at(s * (la + lb) / 2, (lc + ld) / 2, wc - 0.5),
                             half_mm=((lb - la) / 2, (ld - lc) / 2, hw - 0.5), round_mm=1.2))
            u1 = lb
        cuts = [Capsule(lv.P(s * fu, fv, wc - hw - 3.0), lv.P(s * fu, fv, wc + hw + 3.0), fr)]
        if name != "C2":  # gutter for the exiting root on the upper surface
            cuts.append(Capsule(lv.P(s * (W / 2 + 4.0), -D / 2 - 5.0, wc + hw + 0.6),
                                lv.P(s * (W / 2 + 18.5), -D / 2 + 0.5, wc + hw + 0.2), 2.4))
        bone.append(Stroke(Subtract(Union(parts), Union(cuts)), tp))
        info[f"transverse_foramen.{side}"] = lv.P(s * fu, fv, wc).round(2).tolist()
        info[f"tp_tip.{side}"] = lv.P(s * u1, fv - 2.0, wc).round(2).tolist()
        if name in ("C3", "C4", "C5", "C6"):
            if name == "C6":  # Chassaignac's tubercle: larger and more anterior
                c, r = (s * (W / 2 + 14.0), -D / 2 + 10.0, wc - 1.0), (4.2, 4.0, 5.0)
            else:
                c, r = (s * (W / 2 + 12.5), -D / 2 + 8.5, wc - 0.5), (3.0, 3.0, 3.8)
            bone.append(Stroke(Ellipsoid(lv.at(*c), radii=r), LAB("anterior_tubercle")))
            info[f"anterior_tubercle.{side}"] = lv.P(*c).round(2).tolist()
            bone.append(Stroke(Ellipsoid(lv.at(s * (W / 2 + 17.0), -D / 2 - 3.5, wc + 0.5),
                                         radii=(3.0, 3.2, 3.8)), tp))
        elif name == "C7":
            bone.append(Stroke(Ellipsoid(lv.at(s * (u1 - 1.0), (v0 + v1) / 2, wc),
                                         radii=(3.5, 5.0, 4.0)), tp))
    # spinous process
    sig = np.radians(lv.sp_slope_deg)
    root = np.array([0.0, -D / 2 - lv.canal_d - 2.5, -1.5])
    tip = root + lv.sp_len * np.array([0.0, -np.cos(sig), -np.sin(sig)])
    r0 = {"C2": 4.5, "C7": 3.5, "T1": 3.5, "T2": 3.5}.get(name, 3.0)
    sp = LAB("spinous_process")
    bone.append(Stroke(Capsule(lv.P(*root), lv.P(*tip), r0, r0 - 0.7), sp))
    if name in ("C2", "C3", "C4", "C5", "C6"):
        rb = 3.8 if name == "C2" else 2.8
        for s in (1, -1):
            c = tip + np.array([s * (rb * 0.9), 0.5, -0.5])
            bone.append(Stroke(Ellipsoid(lv.at(*c), radii=(rb, rb + 0.2, rb + 0.8)), sp))
    else:
        bone.append(Stroke(Ellipsoid(lv.at(*tip), radii=(4.0, 4.0, 4.5)), sp))
    info["spinous_tip"] = lv.P(*tip).round(2).tolist()
    return out


def facet_joint_strokes(lay: SpineLayout, up: str, lo: str, deg: Degeneration
                        ) -> tuple[list[Stroke], list[Stroke], dict[str, np.ndarray]]:
    """(capsule strokes, joint-space strokes, joint centres by side) of one facet joint."""
    L = lay.levels[lo]
    Dj = lay.discs[f"{up}-{lo}"]
    ru, rv = pillar_radii(L, deg)
    caps, spaces, centres = [], [], {}
    gap = deg.joint_gap_mm
    for side, s in SIDES.items():
        c, n = joint_plane(lay, up, lo, s)
        centres[side] = c
        R = np.column_stack([Dj[:3, 0], np.cross(n, Dj[:3, 0]), n])
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, c
        rvp = rv / np.cos(np.radians(FACET_DEG[up]))
        caps.append(Stroke(Ellipsoid(T, radii=(ru + 1.5 + 0.3 * deg.grade, rvp + 1.0,
                                               gap / 2 + 2.2 + 0.3 * deg.grade)),
                           LAB("facet_capsule")))
        col = EllipticCylinder(T, radii=(ru - 0.2, rvp * 0.95), half_height_mm=gap / 2)
        spaces.append(Stroke(col, LAB("facet_joint_space"), never_into=BONE))
    return caps, spaces, centres


def disc_strokes(lay: SpineLayout, up: str, lo: str, deg: Degeneration) -> list[Stroke]:
    """Intervertebral disc between ``up`` and ``lo`` (+ posterior bulge when degenerate)."""
    U, L = lay.levels[up], lay.levels[lo]
    Dj = lay.discs[f"{up}-{lo}"]
    h = lay.disc_h[f"{up}-{lo}"]
    W, D = (U.W + L.W) / 2, (U.D + L.D) / 2
    out = [Stroke(EllipticCylinder(Dj, radii=(W / 2 - 0.5, D / 2 - 0.3), half_height_mm=h / 2 + 0.6,
                                   round_mm=0.5), LAB("disc"))]
    if deg.grade > 0:
        T = Dj.copy()
        T[:3, 3] = Dj[:3, :3] @ np.array([0.0, -D / 2 + 0.8, 0.0]) + Dj[:3, 3]
        out.append(Stroke(Ellipsoid(T, radii=(6.0, 0.9 + 0.6 * deg.grade, max(h / 2, 1.2))),
                          LAB("disc")))
    return out


def first_rib(lay: SpineLayout, s: int) -> Union:
    """First rib from the T1 costovertebral joint round to its costal cartilage (T1 frame)."""
    t1 = lay.levels["T1"]
    pu, pv = t1.pillar_u, t1.pillar_v
    pts = [(s * (t1.W / 2 + 1.5), -t1.D / 2 + 2.0, t1.H / 2 - 3.0), (s * (pu + 6.0), pv - 2.0, 0.0),
           (s * (pu + 15.0), pv - 6.0, 0.0), (s * (pu + 24.0), pv - 1.0, -6.0),
           (s * 47.0, 5.0, -15.0), (s * 44.0, 24.0, -26.0), (s * 34.0, 40.0, -36.0),
           (s * 25.0, 48.0, -42.0)]
    P = np.array([t1.P(*p) for p in pts])
    return tube(P, np.array([3.2, 3.6, 3.8, 4.0, 4.2, 4.2, 4.0, 3.8]))


__all__ = ["Degeneration", "SIDES", "BONE", "LAB", "vertebra_strokes", "facet_joint_strokes",
           "disc_strokes", "first_rib", "pillar_shapes", "joint_plane", "transverse_foramen",
           "plate", "pillar_radii", "tp_w", "_rot"]
