"""Cervical canal and nerves: epidural space, ligamentum flavum, dura, CSF, spinal cord;
intervertebral foramina with the exiting roots (root Cn exits above vertebra Cn) and their
dorsal root ganglia, running out in the gutter of the transverse process; medial branches
wrapping the waist of the articular pillars C3–C7 and the third occipital nerve over the
C2–C3 facet joint.

Nerve radii are *assumptions*: medial branches and the third occipital nerve ~1 mm thick
in cadaver studies are drawn with radius 1.0 mm so that a 1 mm grid resolves them.
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.patient import Centerline
from needleguide.anatomy.phantom.cervical_geom import SUBAXIAL, SectionColumn, SpineLayout, tube
from needleguide.anatomy.phantom.cervical_upper import FM_C, FM_R
from needleguide.anatomy.phantom.cervical_vertebra import (
    BONE,
    LAB,
    SIDES,
    WAIST,
    Degeneration,
    joint_plane,
    pillar_radii,
    tp_w,
)
from needleguide.anatomy.phantom.painter import Stroke
from needleguide.anatomy.phantom.sdf import Capsule, Ellipsoid, Subtract

ROOTS = {"C3": ("C2", "C3"), "C4": ("C3", "C4"), "C5": ("C4", "C5"), "C6": ("C5", "C6"),
         "C7": ("C6", "C7"), "C8": ("C7", "T1"), "T1": ("T1", "T2")}
NERVE_R = 1.0
# cord semi-axes (half width, half depth) mm by level (assumption from MRI norms)
CORD = {"C1": (5.5, 4.3), "C2": (5.6, 4.2), "C3": (6.0, 4.1), "C4": (6.5, 4.0),
        "C5": (6.7, 4.0), "C6": (6.5, 3.9), "C7": (5.8, 3.9), "T1": (4.8, 3.8), "T2": (4.5, 3.8)}


def _canal_columns(lay: SpineLayout) -> dict[str, SectionColumn]:
    """Horizontal-section columns of the canal, dura, CSF sac and cord (C1 frame above)."""
    lv = lay.levels
    c1 = lv["C1"]
    rows = []  # (z, cy, a, b, cord a, cord b, cx)
    for n in ("T2", "T1", "C7", "C6", "C5", "C4", "C3", "C2"):
        L = lv[n]
        c = L.P(0, L.canal_v, 0)
        cos = abs(L.V(0, 0, 1)[2])
        rows.append((c[2], c[1], L.canal_w / 2, L.canal_d / 2 / cos, *CORD[n], c[0]))
    c = c1.P(0, -15.5, 0)
    rows.append((c[2], c[1], 13.0, 10.5, *CORD["C1"], c[0]))
    c = c1.P(FM_C[0], FM_C[1], FM_C[2])
    z_fm = c[2]
    rows.append((c[2], c[1], FM_R[0], FM_R[1], 8.0, 6.5, c[0]))
    c = c1.P(0, -5.0, 45.0)
    rows.append((c[2], c[1], 16.0, 14.0, 10.0, 9.0, c[0]))
    r = np.array(sorted(rows))
    z, cy, a, b, ca, cb, cx = r.T
    t2 = lv["T2"]
    zlo = t2.P(0, t2.canal_v, -t2.H / 2 - 30.0)[2]  # runs on below the region
    return {
        "canal": SectionColumn(z, cx, cy, a, b, z_lo=zlo, z_hi=z_fm + 2.0),
        "dura": SectionColumn(z, cx, cy + 0.6, a - 1.8, b - 1.3, z_lo=zlo, z_hi=z[-1]),
        "csf": SectionColumn(z, cx, cy + 0.6, a - 2.3, b - 1.8, z_lo=zlo, z_hi=z[-1]),
        "cord": SectionColumn(z, cx, cy + 1.0, ca, cb, z_lo=zlo, z_hi=z[-1]),
        "posterior": SectionColumn(z, cx, cy - b, a - 1.0, b * 0.9, z_lo=zlo, z_hi=z[-1]),
        # anterior internal vertebral venous plexus: paired channels on the back of the bodies
        "veins": [SectionColumn(z, cx + sgn * a * 0.42, cy + b - 1.3, np.full_like(a, 1.6),
                                np.full_like(a, 1.0), z_lo=zlo, z_hi=z_fm - 4.0)
                  for sgn in (1.0, -1.0)],
    }


def canal_strokes(lay: SpineLayout, deg: Degeneration) -> list[Stroke]:
    """Epidural fat, ligamentum flavum, dura, CSF and cord (painted before the bones and
    discs, which overwrite them where they overlap)."""
    c = _canal_columns(lay)
    lf = Subtract(c["canal"].grown(1.5 + deg.flavum_mm), c["canal"].grown(-1.6 - deg.flavum_mm))
    lf = lf & c["posterior"]
    return [Stroke(c["canal"], LAB("epidural_fat")),
            Stroke(lf, LAB("ligamentum_flavum")),
            *[Stroke(v, LAB("epidural_venous_plexus")) for v in c["veins"]],
            Stroke(c["dura"], LAB("dura")),
            Stroke(c["csf"], LAB("csf")),
            Stroke(c["cord"], LAB("spinal_cord"))]


def root_path(lay: SpineLayout, root: str, s: int) -> np.ndarray:
    """Centre line (N, 3) RAS of root ``root`` from the dural sac through the foramen,
    along the gutter of the transverse process and on into the ventral ramus."""
    up, lo = ROOTS[root]
    L = lay.levels[lo]
    W, D, H = L.W, L.D, L.H
    wt = tp_w(L) + 3.0
    pts = [(s * (L.canal_w / 2 - 3.0), L.canal_v + 1.5, H / 2 + 3.5),
           (s * (L.canal_w / 2 + 0.5), -D / 2 - 2.8, H / 2 + 3.0),
           (s * (L.pillar_u + 1.0), -D / 2 - 2.5, H / 2 + 1.0),
           (s * (W / 2 + 16.0), -D / 2 - 0.5, wt + 0.8),
           (s * (W / 2 + 28.0), -D / 2 + 6.0, wt - 9.0)]
    return np.array([L.P(*p) for p in pts])


def foramen_target(lay: SpineLayout, root: str, s: int) -> np.ndarray:
    """Point in the foraminal fat above the exiting root (transforaminal target)."""
    up, lo = ROOTS[root]
    L = lay.levels[lo]
    return L.P(s * (L.canal_w / 2 + 2.5), -L.D / 2 - 2.7, L.H / 2 + 5.8)


def root_strokes(lay: SpineLayout) -> tuple[list[Stroke], list[Stroke], dict[str, Centerline]]:
    """(foramen fat strokes, root + DRG strokes, nerve centerlines)."""
    foramen, roots, cls = [], [], {}
    for root, (_up, lo) in ROOTS.items():
        L = lay.levels[lo]
        for side, s in SIDES.items():
            a = L.P(s * (L.canal_w / 2 - 0.5), -L.D / 2 - 2.7, L.H / 2 + 4.5)
            b = L.P(s * (L.pillar_u + 1.5), -L.D / 2 - 2.5, L.H / 2 + 3.0)
            foramen.append(Stroke(Capsule(a, b, 4.0), LAB("foramen")))
            P = root_path(lay, root, s)
            R = np.array([1.6, 1.8, 1.8, 2.0, 2.4])
            roots.append(Stroke(tube(P, R), LAB("nerve_root")))
            g = L.at(s * (L.pillar_u - 0.5), -L.D / 2 - 2.6, L.H / 2 + 1.8)
            roots.append(Stroke(Ellipsoid(g, radii=(2.8, 2.4, 3.0)), LAB("drg")))
            cls[f"nerve_root.{root}.{side}"] = Centerline(f"nerve_root.{root}.{side}", "nerve",
                                                          P, R, LAB("nerve_root"))
    return foramen, roots, cls


def medial_branch_path(lay: SpineLayout, name: str, s: int, deg: Degeneration
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(path (N, 3) RAS, landmark on the lateral waist) of the medial branch at ``name``."""
    L = lay.levels[name]
    order = list(SUBAXIAL)
    i = order.index(name)
    cu, _ = joint_plane(lay, order[i - 1], name, s)
    cl, _ = joint_plane(lay, name, order[i + 1], s)
    m = (cu + cl) / 2 if name != "C7" else cl + 0.62 * (cu - cl)  # C7: near the SAP apex
    inv = np.linalg.inv(L.T)
    w = float((inv[:3, :3] @ m + inv[:3, 3])[2])
    ru, rv = pillar_radii(L, deg)
    f = WAIST if name != "C7" else 1.0
    ru, rv = ru * f, rv * f
    pu, pv = L.pillar_u, L.pillar_v
    k = NERVE_R + 0.15
    ang = np.radians([70, 40, 0, -35, -65, -90])
    pts = [(s * (pu + (ru + k) * np.cos(a)), pv + (rv + k) * np.sin(a),
            w - 0.002 * np.degrees(a)) for a in ang]
    pts.append((s * (pu - ru * 0.8), pv - rv - k - 1.0, w - 1.0))
    pts.append((s * (pu - ru - 4.0), pv - rv - 6.0, w - 2.0))
    P = np.array([L.P(*p) for p in pts])
    return P, P[2].copy()


def third_occipital_path(lay: SpineLayout, s: int, deg: Degeneration
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(path, landmark) of the third occipital nerve crossing the C2–C3 facet joint
    dorsolaterally, then ascending medially towards the suboccipital region."""
    c, n = joint_plane(lay, "C2", "C3", s)
    L = lay.levels["C3"]
    ru, rv = pillar_radii(L, deg)
    eu = L.V(1, 0, 0) * s
    eu = eu - n * (eu @ n)
    eu /= np.linalg.norm(eu)
    ev = np.cross(n, L.V(1, 0, 0))  # in-plane anterior
    ev = ev * np.sign(ev @ L.V(0, 1, 0))
    rvp = rv / np.cos(np.radians(45.0))
    r = NERVE_R + 1.7
    pts = [c + eu * (ru + r) + ev * 3.0 - n * 3.0,
           c + eu * (ru + r),
           c + (eu * 0.7 - ev * 0.7) / np.linalg.norm([0.7, 0.7]) * (0.5 * (ru + rvp) + r),
           c - ev * (rvp + r) + n * 1.5,
           c - ev * (rvp + r + 3.0) - eu * 4.0 + n * 10.0,
           c - ev * (rvp + r + 10.0) - eu * 9.0 + n * 28.0]
    P = np.array(pts)
    return P, P[2].copy()


def nerve_strokes(lay: SpineLayout, deg: Degeneration
                  ) -> tuple[list[Stroke], dict[str, Centerline], dict[str, np.ndarray]]:
    """Medial branches C3–C7 and third occipital nerves: strokes, centerlines, landmarks."""
    strokes, cls, lms = [], {}, {}
    for side, s in SIDES.items():
        for name in ("C3", "C4", "C5", "C6", "C7"):
            P, lm = medial_branch_path(lay, name, s, deg)
            R = np.full(len(P), NERVE_R)
            strokes.append(Stroke(tube(P, R), LAB("medial_branch"), never_into=BONE))
            cls[f"medial_branch.{name}.{side}"] = Centerline(f"medial_branch.{name}.{side}",
                                                             "nerve", P, R, LAB("medial_branch"))
            lms[f"{name}.medial_branch.{side}"] = lm
        P, lm = third_occipital_path(lay, s, deg)
        R = np.full(len(P), NERVE_R)
        strokes.append(Stroke(tube(P, R), LAB("third_occipital_nerve"), never_into=BONE))
        cls[f"third_occipital_nerve.{side}"] = Centerline(f"third_occipital_nerve.{side}",
                                                          "nerve", P, R,
                                                          LAB("third_occipital_nerve"))
        lms[f"third_occipital_nerve.{side}"] = lm
    return strokes, cls, lms
