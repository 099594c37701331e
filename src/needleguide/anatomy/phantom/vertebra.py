"""Strokes of one thoracolumbar vertebra (T11–L5) and of the joints between two vertebrae.

All shapes are built in the vertebra's local frame (x right, y anterior, z = end-plate
normal, origin = body centre) from :class:`~needleguide.anatomy.phantom.anthropometry.
VertebraDims` and mapped to patient RAS through the vertebra's pose.
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.phantom.painter import Stroke
from needleguide.anatomy.phantom.sdf import (
    Box,
    EllipticCylinder,
    HalfSpace,
    Intersect,
    Shape,
    Tube,
    Union,
)
from needleguide.anatomy.phantom.spine import Level, frame
from needleguide.anatomy.phantom.vertebra_parts import (
    CUP_INFERIOR,
    CUP_SUPERIOR,
    articular_shapes,
    body_shape,
    pedicle_shape,
    pillar_shapes,
    spinous_shape,
    transverse_shape,
)
from needleguide.anatomy.tissues import default_tissue_table

_T = default_tissue_table()
LAB = {t.name: t.label for t in _T}
BONE = tuple(_T.labels_in_group("bone"))


class Phases:
    """Strokes collected by painting phase; ``ordered()`` gives the painting order."""

    ORDER = ("muscle", "organ", "bone", "disc", "joint", "foramen", "ligament", "canal",
             "thecal", "neural", "vessel", "nerve_small")

    def __init__(self):
        self.by = {k: [] for k in self.ORDER}

    def add(self, phase: str, shape, label: str, only_into=None, never_into=None):
        oi = None if only_into is None else tuple(LAB[n] if isinstance(n, str) else n
                                                  for n in only_into)
        ni = None if never_into is None else tuple(LAB[n] if isinstance(n, str) else n
                                                   for n in never_into)
        if isinstance(shape, Tube):  # painted capsule by capsule: each has a tight bbox
            shape = Union(shape.segments())
        self.by[phase].append(Stroke(shape, LAB[label], oi, ni))

    def ordered(self) -> list[Stroke]:
        return [s for k in self.ORDER for s in self.by[k]]


def geometry(lv: Level, growth: float = 0.0) -> dict:
    """Named local points of a vertebra (mm, local frame) used by strokes and landmarks."""
    d = lv.dims
    yc = lv.canal_y
    yp = yc - d.canal_depth / 2  # posterior canal boundary
    zp = d.body_height / 2 - d.pedicle_height / 2 - 1.0
    xp = d.canal_width / 2 + d.pedicle_width / 2 - 0.5
    thoracic = lv.name.startswith("T")
    tp_h = 9.0 if lv.name == "L5" else (7.0 if thoracic else 8.0)
    g = {
        "yc": yc, "yp": yp, "zp": zp, "xp": xp,
        "y_tp": yc - (6.0 if thoracic else 2.0), "z_tp": zp - 1.0, "tp_h": tp_h,
        "x_tp_root": d.canal_width / 2 + d.pedicle_width,
        "x_tp_tip": d.tp_span / 2,
        "y_tip": yp - d.spinous_length, "z_sp": 0.04 * d.body_height,
        "lamina_c": (0.0, yp - 4.0, -0.15 * d.body_height),
        "facet_t": 7.0 * (1.0 + growth),
        # lamina plate: from about the pedicle's lower half down to the disc below (its
        # inferior border), so that the interlaminar window between two laminae is
        # ~10–14 mm high at L3–S1 (young adults ~10–20 mm: Kim et al., JMISST 2021;6(1))
        "lam_t": 2.6, "lam_h": 0.4 * d.body_height,
        "lam_zc": -0.2 * d.body_height,
    }
    return g


LAMINA_TILT = 0.28  # sagittal slope of the laminae: top anterior, the inferior border
# posterior (shingled: each lamina's lower edge lies behind the upper edge of the next)


def lamina_line(lv: Level, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Axial course of the lamina of side s (local coords, z = 0): from the pars (p0) to the
    spinous base at the midline (p1); unit direction t and unit normal n_in towards the
    canal. The two laminae form the roof of the canal, meeting at an angle behind it."""
    d = lv.dims
    yp = lv.canal_y - d.canal_depth / 2
    xp = d.canal_width / 2 + d.pedicle_width / 2 - 0.5
    p0 = np.array([s * (xp - 1.0), yp + 4.0, 0.0])
    p1 = np.array([0.0, yp - 3.2, 0.0])
    t = (p1 - p0) / np.linalg.norm(p1 - p0)
    n_in = np.array([t[1], -t[0], 0.0])
    if n_in[1] < 0:
        n_in = -n_in
    return p0, p1, t, n_in


def canal_roof_fill(lv: Level, z_lo: float, z_hi: float) -> Shape:
    """The posterior (triangular) part of the canal between the laminae: epidural space."""
    d = lv.dims
    g = geometry(lv)
    yp = g["yp"]
    zc = 0.5 * (z_lo + z_hi)
    box = Box(lv.sub((0.0, yp - 3.0, zc), (0, 0, 1), (0, 1, 0)),
              half_mm=(d.canal_width / 2 - 1.0, 6.0, 0.5 * (z_hi - z_lo)), round_mm=1.0)
    cuts = []
    for s in (1, -1):
        p0, p1, t, n_in = lamina_line(lv, s)
        surf = 0.5 * (p0 + p1) + n_in * g["lam_t"]
        cuts.append(HalfSpace(lv.P(*surf), -lv.V(*n_in), extent_mm=80.0))
    return Intersect([box, *cuts])


def vertebra_strokes(ph: Phases, lv: Level, deg: dict) -> dict:
    """Add the bone strokes of ``lv`` to ``ph``; return its named points (patient RAS)."""
    d = lv.dims
    g = geometry(lv, deg["facet_growth"])
    W, D, H = d.body_width, d.body_depth, d.body_height
    yc, yp, zp, xp = g["yc"], g["yp"], g["zp"], g["xp"]
    # --- body: waisted, cupped end plates inside the ring apophysis; osteophyte rims
    body = body_shape(lv)
    ost = deg["osteophyte_mm"]
    if ost > 0:
        rims = []
        for sgn in (1, -1):
            rims.append(EllipticCylinder(
                lv.sub((0, 0.15 * ost, sgn * (H / 2 - ost / 3)), (0, 0, 1), (0, 1, 0)),
                radii=(W / 2 + ost, D / 2 + 0.6 * ost), half_height_mm=ost / 2.5,
                round_mm=ost / 2.6))
        body = Union([body, *rims])
    ph.add("bone", body, "vertebral_body")
    pts: dict[str, np.ndarray] = {}
    for s, side in ((1, "right"), (-1, "left")):
        # pedicle: elliptic cylinder converging medially towards the body
        ped_c = (s * xp, yc + 1.0, zp)
        ph.add("bone", pedicle_shape(lv, s, ped_c), "pedicle")
        pts[f"pedicle_{side}"] = lv.P(*ped_c)
        # articular pillar with the pars interarticularis (lamina label)
        ph.add("bone", Union(pillar_shapes(lv, s, g)), "lamina")
        # lamina: plate from the pillar to the midline, sloping down and back
        p0, p1, t, n_in = lamina_line(lv, s)
        lam_h, zc = g["lam_h"], g["lam_zc"]
        lam = Box(lv.sub(((p0 + p1) / 2 + np.array([0, 0, zc])), (0, LAMINA_TILT, 1), n_in),
                  half_mm=(np.linalg.norm(p1 - p0) / 2 + 3.0, g["lam_t"], lam_h),
                  round_mm=2.4)
        ph.add("bone", lam, "lamina")
        pts[f"lamina_{side}"] = lv.P(*((p0 + p1) / 2 - n_in * 0.5 + np.array([0, 0, zc])))
        # transverse process: tapered, swept back
        tp, _tip = transverse_shape(lv, s, g)
        ph.add("bone", tp, "transverse_process")
        x0, x1 = g["x_tp_root"] - 2.0, g["x_tp_tip"]
        pts[f"tp_tip_{side}"] = lv.P(s * (x1 - 3.0),
                                     g["y_tp"] - np.tan(np.radians(12.0)) * (x1 - 3.0 - x0),
                                     g["z_tp"])
    # spinous process: one blade per level with a thickened tip (gaps between levels)
    sp, tip_local = spinous_shape(lv, g)
    ph.add("bone", sp, "spinous_process")
    pts["spinous_tip"] = lv.P(tip_local[0], tip_local[1] - 2.0, tip_local[2])
    pts["lamina_center"] = lv.P(*g["lamina_c"])
    pts["spinous_base"] = lv.P(0.0, yp - 6.0, g["z_sp"])
    return pts


def joint_frame(B: Level, s: int, angle_deg: float) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray, np.ndarray]:
    """Facet joint between B's SAP and the IAP above, side s (+1 right): centre, unit
    normal towards the SAP (antero-lateral), in-plane horizontal t, superior (patient)."""
    d = B.dims
    g = geometry(B)
    phi = np.radians(angle_deg)
    c = B.P(s * (d.canal_width / 2 + d.pedicle_width / 2 + 1.5), g["yp"] - 1.5,
            d.body_height / 2 + 2.0)
    n = B.V(s * np.cos(phi), np.sin(phi), 0)
    t = B.V(s * np.sin(phi), -np.cos(phi), 0)
    return c, n, t, B.up


def facet_strokes(ph: Phases, U: Level, B: Level, s: int, angle_deg: float, deg: dict
                  ) -> dict:
    """SAP of B, IAP of U, capsule and joint space (side s). Returns named points."""
    c, n, t, up = joint_frame(B, s, angle_deg)
    T = 7.0 * (1.0 + deg["facet_growth"])
    hs = 1.0  # half width of the joint space (cartilage + synovial space)

    def fr(centre):
        return frame(centre, up, n)  # local frame: z = up, y = n (towards the SAP)

    sap, iap = articular_shapes(c, n, up, T, hs)
    ph.add("bone", sap, "superior_articular_process")
    ph.add("bone", iap, "inferior_articular_process")
    cap = Box(fr(c), half_mm=(11.0, T + hs + 0.5, 10.5), round_mm=3.0)
    ph.add("joint", cap, "facet_capsule", never_into=BONE)
    space = Box(fr(c), half_mm=(8.0, hs, 8.5), round_mm=0.9)
    ph.add("joint", space, "facet_joint_space")
    return {"facet": c, "sap": c + n * (hs + T / 2), "iap": c - n * (hs + T / 2),
            "normal": n}


def disc_shape(U: Level, B: Level, bulge_mm: float = 1.0):
    """The disc between U (above) and B (below): the body outline between the end plates,
    filling their central cups."""
    du, db = U.dims, B.dims
    W = 0.5 * (du.body_width + db.body_width) + 2 * bulge_mm
    D = 0.5 * (du.body_depth + db.body_depth) + 2 * bulge_mm
    mid = 0.5 * (U.center + B.center)
    up = U.up + B.up
    ant = U.ant + B.ant
    cyl = EllipticCylinder(frame(mid, up, ant), radii=(W / 2, D / 2),
                           half_height_mm=float(np.linalg.norm(U.center - B.center)) / 2,
                           round_mm=2.0)
    # reaching into the cupped end plates (paint it never into the vertebral bodies)
    top = HalfSpace(U.center - U.up * (du.body_height / 2 - CUP_INFERIOR - 0.3), U.up,
                    extent_mm=60.0)
    bot = HalfSpace(B.center + B.up * (db.body_height / 2 - CUP_SUPERIOR - 0.3), -B.up,
                    extent_mm=60.0)
    return Intersect([cyl, top, bot])


def canal_segment(lv: Level, z_lo: float, z_hi: float, dx: float = 0.0, dy: float = 0.0,
                  shrink_x: float = 0.0, shrink_y: float = 0.0) -> EllipticCylinder:
    """Elliptic section of the canal (or a structure inside it) along ``lv``'s axis."""
    d = lv.dims
    zc = 0.5 * (z_lo + z_hi)
    return EllipticCylinder(lv.sub((dx, lv.canal_y + dy, zc), (0, 0, 1), (0, 1, 0)),
                            radii=(d.canal_width / 2 - shrink_x, d.canal_depth / 2 - shrink_y),
                            half_height_mm=0.5 * (z_hi - z_lo), round_mm=0.0)


def rib(lv: Level, s: int, length_scale: float) -> Tube:
    """A floating rib (T11/T12) from the costovertebral joint, curving anterolaterally."""
    d = lv.dims
    W = d.body_width
    k = length_scale
    pts = [lv.P(s * (W / 2 - 3), -d.body_depth / 2 + 3, d.body_height / 2 - 5)]
    pts.append(lv.P(s * (W / 2 + 14), lv.canal_y - 4, d.body_height / 2 - 8))
    for u in np.linspace(0.2, 1.0, 5):
        ang = np.radians(200 - 140 * u)  # sweep from postero-lateral to antero-lateral
        r = W / 2 + 30 + 70 * k * u
        pts.append(lv.P(s * (W / 2 + 20 + r * 0.55 * u + 25 * k * u),
                        lv.canal_y - 12 + 60 * k * u ** 1.6 * np.cos(ang) * -0.3
                        + 55 * k * u ** 1.4,
                        d.body_height / 2 - 10 - 45 * k * u))
    P = np.array(pts)
    R = np.linspace(5.0, 3.5, len(P))
    return Tube(P, R)


__all__ = ["LAB", "BONE", "Phases", "vertebra_strokes", "facet_strokes", "disc_shape",
           "canal_segment", "geometry", "joint_frame", "rib", "lamina_line",
           "canal_roof_fill", "LAMINA_TILT"]
