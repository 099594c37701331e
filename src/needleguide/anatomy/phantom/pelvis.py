"""Sacrum (foramina, hiatus, cornua), coccyx, ilium with the sacroiliac joint, and hips.

The sacrum follows a kyphotic curve from the S1 end plate (its tilt is the sacral slope);
the hip centres sit at the pelvic radius from the S1 end plate, tilted by the pelvic tilt
(Legaye 1998). Dimensions: anthropometry.PelvisDims.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide.anatomy.phantom.anthropometry import PelvisDims, VertebraDims
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
from needleguide.anatomy.phantom.spine import Level, SpineLayout, frame, tilt_axes
from needleguide.anatomy.phantom.vertebra import BONE, Phases


@dataclass
class Pelvis:
    s1: Level  # S1 as a vertebra (pose at the S1 body centre)
    segments: list[np.ndarray]  # LocalToPatient of S1..S5 segment centres
    seg_half_h: float
    widths: list[float]  # half widths of each segment
    thick: list[float]  # AP thickness of each segment
    hips: dict[str, np.ndarray]  # side -> hip centre
    neck_axis: dict[str, np.ndarray]
    points: dict[str, np.ndarray]


def s1_dims(p: PelvisDims) -> VertebraDims:
    return VertebraDims("S1", body_width=p.s1_width, body_depth=p.s1_depth, body_height=26.0,
                        pedicle_width=18.0, pedicle_height=16.0, pedicle_angle=30.0,
                        canal_width=30.0, canal_depth=14.0, spinous_length=18.0,
                        spinous_height=12.0, tp_span=p.sacrum_base_width, disc_below=0.0,
                        facet_angle_below=0.0)


def sacrum_layout(sp: SpineLayout, p: PelvisDims) -> Pelvis:
    """Segment frames of the curved sacrum and the hip centres."""
    tilt0 = sp.s1_tilt_deg
    n = 5
    seg_h = p.sacrum_length / n
    frames = []
    centre = sp.s1_endplate.copy()
    widths, thick = [], []
    for i in range(n):
        tilt = tilt0 - p.sacral_kyphosis * (i + 0.5) / n
        up, ant = tilt_axes(tilt)
        c = centre - up * seg_h / 2
        frames.append(frame(c, up, ant))
        centre = c - up * seg_h / 2
        widths.append(p.sacrum_base_width / 2 * (1.0 - 0.72 * i / (n - 1)) if i < 2
                      else p.sacrum_base_width / 2 * (0.78 - 0.5 * (i - 1) / (n - 1)))
        thick.append(52.0 - 8.5 * i)
    up1, ant1 = tilt_axes(tilt0)
    s1c = sp.s1_endplate - up1 * 13.0
    s1 = Level("S1", s1_dims(p), frame(s1c, up1, ant1), tilt0)
    pt = np.radians(p.pelvic_tilt)
    hip_mid = sp.s1_endplate + p.pelvic_radius * np.array([0.0, np.sin(pt), -np.cos(pt)])
    hips = {"right": hip_mid + np.array([p.hip_separation / 2, 0, 0]),
            "left": hip_mid - np.array([p.hip_separation / 2, 0, 0])}
    nsa = np.radians(p.neck_shaft_angle - 90.0)
    av = np.radians(p.anteversion)
    neck = {}
    for side, s in (("right", 1), ("left", -1)):
        v = np.array([s * np.cos(nsa) * np.cos(av), -np.cos(nsa) * np.sin(av), -np.sin(nsa)])
        neck[side] = v / np.linalg.norm(v)
    return Pelvis(s1, frames, seg_h / 2, widths, thick, hips, neck, {})


def _seg(pv: Pelvis, i: int, x, y, z) -> np.ndarray:
    T = pv.segments[i]
    return T[:3, :3] @ np.array([x, y, z], float) + T[:3, 3]


def sij_frame(pv: Pelvis, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SIJ plane (side s): centre, normal towards the ilium, in-plane posterior t, axis."""
    T = pv.segments[1]
    beta = np.radians(22.0)
    c = _seg(pv, 1, s * (pv.widths[1] + 4.0), -6.0, 4.0)
    n = T[:3, :3] @ np.array([s * np.cos(beta), -np.sin(beta), 0.0])
    t = T[:3, :3] @ np.array([-s * np.sin(beta), -np.cos(beta), 0.0])
    ax = T[:3, 2].copy()
    return c, n, t, ax


def s1_interlaminar_notch(pv: Pelvis, shrink: float = 0.0) -> Box:
    """The L5–S1 interlaminar window: the S1 arch (posterior canal wall) starts ~10 mm
    below the S1 end plate, medial to the S1 superior articular processes, so that the
    largest lumbar interlaminar window opens between the L5 laminae and the sacrum."""
    T = pv.segments[0]
    yw = -pv.thick[0] + 30.0 - 7.0  # posterior boundary of the S1 canal
    zt = pv.seg_half_h + 4.0
    zb = pv.seg_half_h - 15.0
    return Box(frame(_seg(pv, 0, 0.0, yw - 7.0, 0.5 * (zt + zb)), T[:3, 2], T[:3, 1]),
               half_mm=(12.0 - shrink, 8.0 - shrink, 0.5 * (zt - zb) - shrink), round_mm=2.0)


def sacrum_strokes(ph: Phases, pv: Pelvis, deg: dict) -> None:
    """Sacral bone (bodies, lateral masses, ala), cornua and coccyx, cut at both SIJs."""
    shapes = []
    for i, T in enumerate(pv.segments):
        w = pv.widths[i]
        th = pv.thick[i]
        body_r = (max(25.0 - 3.5 * i, 9.0), max(18.0 - 2.5 * i, 7.0))
        shapes.append(EllipticCylinder(T, radii=body_r, half_height_mm=pv.seg_half_h + 1.0,
                                       round_mm=2.0))
        w_top = pv.widths[i - 1] if i > 0 else w
        w_bot = pv.widths[i + 1] if i + 1 < len(pv.widths) else 0.7 * w
        wb, wt = 0.5 * (w + w_bot), 0.5 * (w + w_top)
        shapes.append(EllipticCylinder(
            frame(_seg(pv, i, 0, -th / 2 + body_r[1], 0), T[:3, 2], T[:3, 1]),
            radii=(wb, th / 2 * 1.05), half_height_mm=pv.seg_half_h + 1.0,
            top_scale=wt / wb, round_mm=3.0))
    # bridges at the fused segment junctions (no notches between the kyphotic segments)
    for i in range(len(pv.segments) - 1):
        Ta, Tb = pv.segments[i], pv.segments[i + 1]
        ra = (max(25.0 - 3.5 * i, 9.0), max(18.0 - 2.5 * i, 7.0))
        rb = (max(25.0 - 3.5 * (i + 1), 9.0), max(18.0 - 2.5 * (i + 1), 7.0))
        pa = _seg(pv, i, 0, -pv.thick[i] / 2 + ra[1], -pv.seg_half_h)
        pb = _seg(pv, i + 1, 0, -pv.thick[i + 1] / 2 + rb[1], pv.seg_half_h)
        up = Ta[:3, 2] + Tb[:3, 2]
        shapes.append(EllipticCylinder(frame(0.5 * (pa + pb), up, Ta[:3, 1] + Tb[:3, 1]),
                                       radii=(0.95 * pv.widths[i + 1],
                                              0.25 * (pv.thick[i] + pv.thick[i + 1])),
                                       half_height_mm=7.0, round_mm=3.0))
    # S1 ala rises a little above the sacral end plate laterally
    shapes.append(Box(frame(_seg(pv, 0, 0, -4.0, 4.0), pv.segments[0][:3, 2],
                            pv.segments[0][:3, 1]),
                      half_mm=(pv.widths[0], 16.0, pv.seg_half_h), round_mm=9.0))
    cuts = []
    for s in (1, -1):
        c, n, t, ax = sij_frame(pv, s)
        cuts.append(HalfSpace(c - n * 1.0, n, extent_mm=200.0))
        # lateral mass (auricular surface) along the whole joint
        shapes.append(Ellipsoid(frame(c - n * 10.0 - ax * 5.0, ax, n),
                                radii=(23.0, 12.0, 40.0)))
    # (union of parts) ∩ cuts − the L5–S1 interlaminar notch, painted part by part
    notch = s1_interlaminar_notch(pv)
    ph.add("bone", Union([Subtract(Intersect([sh, *cuts]), notch) for sh in shapes]),
           "sacrum")
    # cornua beside the hiatus and the median crest
    # (the cornua stand ~3 mm behind the sacrococcygeal ligament that spans between
    # them; intercornual distance ~15 mm: Senoglu 2005, Chen 2004 on ultrasound)
    for s in (1, -1):
        ph.add("bone", Ellipsoid(frame(_seg(pv, 4, s * 7.5, -pv.thick[4] + 5.0, 3.0),
                                       pv.segments[4][:3, 2], pv.segments[4][:3, 1]),
                                 radii=(3.5, 5.0, 7.0)), "sacrum")
    # coccyx: three small segments continuing the curve forwards
    T = pv.segments[-1]
    base = T[:3, 3] - T[:3, 2] * pv.seg_half_h
    up, ant = T[:3, 2], T[:3, 1]
    cc = []
    for k in range(3):
        tilt_rot = np.radians(12.0 * (k + 1))
        u = up * np.cos(tilt_rot) - ant * np.sin(tilt_rot)
        a = ant * np.cos(tilt_rot) + up * np.sin(tilt_rot)
        c = base - u * (5.0 + 9.0 * k)
        cc.append(Ellipsoid(frame(c, u, a), radii=(9.0 - 2.0 * k, 6.0 - 1.0 * k, 5.0)))
    ph.add("bone", Union(cc), "coccyx")
    pv.points["coccyx_tip"] = base - up * 32.0 + ant * 8.0


# sacral foramina, S1..S4, radii (mediolateral, craniocaudal) mm: S1–S2 after Saluja et al.,
# J Clin Diagn Res 2018;12(6):AC01 (108 sacra; S1 PSF ~8 mm wide also Kim et al., Korean J
# Pain 2023;36:98); S3–S4 *assumption* (smaller caudally)
SACRAL_FORAMEN_DORSAL = ((3.8, 5.0), (3.6, 3.5), (3.1, 3.1), (2.7, 2.7))
SACRAL_FORAMEN_VENTRAL = ((6.0, 6.3), (6.3, 6.2), (5.0, 4.8), (3.9, 3.7))
LIGAMENT_Y = 5.0  # sacrococcygeal ligament centre, mm in front of the S5 segment's back


def sacral_canal_strokes(ph: Phases, pv: Pelvis) -> dict:
    """Sacral canal (epidural fat), foramina, hiatus and the sacrococcygeal ligament."""
    pts: dict[str, np.ndarray] = {}
    for i in range(4):
        T = pv.segments[i]
        cw = 15.0 - 2.2 * i
        cd = 7.0 - 0.8 * i
        yc = -pv.thick[i] + 30.0 - 2.5 * i
        lab = "epidural_fat" if i < 3 else "sacral_hiatus"
        ph.add("canal", EllipticCylinder(frame(_seg(pv, i, 0, yc, 0), T[:3, 2], T[:3, 1]),
                                         radii=(cw, cd), half_height_mm=pv.seg_half_h + 1.5),
               lab)
        pts[f"S{i + 1}.canal"] = _seg(pv, i, 0, yc, 0)
        # foramina at the segment junction: a short lateral channel from the canal, then
        # a dorsal and a larger ventral foramen running (nearly) anteroposteriorly, so that
        # the AP view shows round lucencies (Saluja 2018: ASF ~13 x 12, PSF ~10 x 8 mm at S1)
        for s, side in ((1, "right"), (-1, "left")):
            xf = cw + 9.0 - 1.0 * i
            zf = -pv.seg_half_h + 2.0
            rd, rv = SACRAL_FORAMEN_DORSAL[i], SACRAL_FORAMEN_VENTRAL[i]
            mid = _seg(pv, i, s * (cw - 2.0), yc, zf)
            junction = _seg(pv, i, s * xf, yc, zf)
            # dorsal foramen: backwards, slightly medially and down; ventral foramen:
            # forwards, laterally and down (the two openings are not coaxial)
            y_back = -pv.thick[i] + 12.0
            d_ax = T[:3, :3] @ np.array([-s * 0.06, -1.0, -0.06])
            dl = 0.5 * (yc - y_back)
            dors = EllipticCylinder(frame(junction + d_ax * dl, d_ax, T[:3, 2]), radii=rd,
                                    half_height_mm=float(np.linalg.norm(d_ax)) * dl + 1.0,
                                    round_mm=0.5)
            v_ax = T[:3, :3] @ np.array([s * 0.12, 1.0, -0.1])
            vl = 0.5 * (20.0 - yc)
            vc = _seg(pv, i, s * (xf + 2.0), yc, zf + 2.5) + v_ax * vl
            vent = EllipticCylinder(frame(vc, v_ax, T[:3, 2]), radii=rv,
                                    half_height_mm=float(np.linalg.norm(v_ax)) * vl + 1.0,
                                    round_mm=0.5)
            chan = Capsule(mid, junction, 0.75 * min(rd))
            ph.add("canal", Union([chan, dors, vent]), "sacral_foramen",
                   never_into=("epidural_fat", "sacral_hiatus"))
            pts[f"S{i + 1}.foramen.{side}"] = junction + d_ax * (yc + pv.thick[i] - 19.5)
            pts[f"S{i + 1}.foramen_ventral.{side}"] = vc + v_ax * (vl - 1.5)
    # L5–S1 window: ligamentum flavum closing it behind, epidural fat in front
    T0 = pv.segments[0]
    yw = -pv.thick[0] + 30.0 - 7.0
    zt, zb = pv.seg_half_h + 4.0, pv.seg_half_h - 15.0
    for y0, hy, lab in ((yw - 4.5, 1.6, "ligamentum_flavum"), (yw - 1.4, 1.6, "epidural_fat")):
        ph.add("ligament" if lab == "ligamentum_flavum" else "canal",
               Box(frame(_seg(pv, 0, 0.0, y0, 0.5 * (zt + zb)), T0[:3, 2], T0[:3, 1]),
                   half_mm=(11.5, hy, 0.5 * (zt - zb) + 1.0), round_mm=1.0), lab,
               never_into=(*BONE, "ligamentum_flavum"))
    # hiatus: posterior wall absent over S4–S5; opening filled with fat, roofed by ligament
    T = pv.segments[4]
    yc4 = -pv.thick[3] + 30.0 - 7.5
    hz = 0.5 * 20.0
    th4 = pv.thick[4]
    op = Box(frame(_seg(pv, 4, 0, -th4 + 10.0, 2.0), T[:3, 2], T[:3, 1]),
             half_mm=(5.0, 6.0, hz), round_mm=2.0)
    ph.add("canal", op, "sacral_hiatus", never_into=("sacrococcygeal_ligament",))
    ph.add("canal", Box(frame(_seg(pv, 3, 0, yc4 - 1.0, -6.0), pv.segments[3][:3, 2],
                              pv.segments[3][:3, 1]), half_mm=(5.0, 4.0, 9.0), round_mm=2.0),
           "sacral_hiatus")
    lig = Box(frame(_seg(pv, 4, 0, -th4 + LIGAMENT_Y, 0.0), T[:3, 2], T[:3, 1]),
              half_mm=(8.0, 1.6, hz + 6.0), round_mm=1.0)
    ph.add("ligament", lig, "sacrococcygeal_ligament", never_into=BONE)
    pts["sacral_hiatus"] = _seg(pv, 4, 0, -th4 + 10.0, 4.0)
    pts["sacral_hiatus_apex"] = _seg(pv, 4, 0, -th4 + 8.0, hz + 2.0)
    return pts
