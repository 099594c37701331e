"""Ilium (wing, crest, posterior tuberosity, body, ischium and pubis), sacroiliac joint
space, acetabulum and the proximal femur.

The iliac wing is a bowed plate (its medial surface, the iliac fossa, concave; ~11 mm of
bow), thin in the fossa (2.5 mm) and thickening towards its border (6 mm), S-shaped seen from
above, with a rounded crest (radius 3.5 mm, 6 mm at the iliac tubercle) along its upper
border: seen edge-on
(oblique views) it is a curved band, not a straight rod. The acetabulum is a socket cut
into a bone mass whose outer surface is not concentric with the femoral head, so the AP
view shows the head, the joint space and the socket roof, not rings. Dimensions:
anthropometry.PelvisDims; wing thickness *assumption* after standard anatomy texts.
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.phantom.anthropometry import PelvisDims
from needleguide.anatomy.phantom.pelvis import Pelvis, sij_frame
from needleguide.anatomy.phantom.sdf import (
    Box,
    Capsule,
    Ellipsoid,
    HalfSpace,
    Intersect,
    Subtract,
    Tube,
    Union,
)
from needleguide.anatomy.phantom.sdf_bone import CurvedPlate
from needleguide.anatomy.phantom.spine import frame
from needleguide.anatomy.phantom.vertebra import BONE, Phases

SIDES = ((1, "right"), (-1, "left"))


def _wing(pv: Pelvis, p: PelvisDims, s: int, z_crest: float) -> dict:
    """Frame and outline of the iliac wing of side s (from the PSIS to the ASIS)."""
    c, n, t, ax = sij_frame(pv, s)
    hip = pv.hips["right" if s > 0 else "left"]
    crest_post = c + n * 10.0 - t * 12.0
    crest_post[2] = z_crest - 8.0
    asis = np.array([s * p.asis_width / 2, hip[1] + 48.0, hip[2] + 70.0])
    e1 = asis - crest_post
    e1[2] = 0.0
    e1 /= np.linalg.norm(e1)
    wz = np.array([s * 0.45, 0.0, 1.0])
    e3 = wz - e1 * (wz @ e1)
    e3 /= np.linalg.norm(e3)
    lat = np.cross(e1, e3)
    if lat[0] * s < 0:  # the plate's local y points laterally (bow: fossa concave)
        lat = -lat
    a_w, b_w = 0.5 * float(np.linalg.norm((asis - crest_post)[:2])) + 10.0, 75.0
    top = 0.5 * (crest_post + asis)
    top[2] = z_crest
    wing_c = top - e3 * b_w
    T = frame(wing_c, e3, lat)
    # bow: the top centre, the front and back ends stay on the old flat plane
    rz = 260.0
    # which end of the local x axis is anterior (the ASIS)
    sx = 1.0 if T[:3, 0] @ np.array([0.0, 1.0, 0.0]) > 0 else -1.0
    # S-shaped crest (seen from above): the anterior part sweeps out, the posterior in
    plate = CurvedPlate(T, half_x=a_w, half_z=b_w, rx=rz * (a_w / b_w) ** 2, rz=rz,
                        s_mm=12.0 * sx, t_centre=2.5, t_rim=6.0, t_low=16.0, round_mm=1.0)
    return {"plate": plate, "frame": T, "e3": e3, "lat": lat, "a_w": a_w, "b_w": b_w,
            "wing_c": wing_c, "top": top, "sx": sx, "crest_post": crest_post}


def _crest(w: dict) -> Tube:
    """Rounded iliac crest along the upper border of the wing, thickest at the tubercle."""
    pl: CurvedPlate = w["plate"]
    th = np.linspace(0.14 * np.pi, 0.86 * np.pi, 13)
    th_tub = np.pi * (0.5 - 0.3 * w["sx"])  # tubercle ~ a third of the way from the ASIS
    pts, rad = [], []
    for a in th:
        x = 0.97 * pl.half_x * np.cos(a)
        z = 0.97 * pl.half_z * np.sin(a)
        pts.append(pl.point(x, z))
        rad.append(3.5 + 2.5 * np.exp(-((a - th_tub) / 0.3) ** 2))
    return Tube(np.array(pts), np.array(rad))


def ilium_strokes(ph: Phases, pv: Pelvis, p: PelvisDims, z_crest: float) -> dict:
    """Ilium (wing, crest, posterior tuberosity, body), ischium/pubis, SIJ space."""
    pts: dict[str, np.ndarray] = {}
    for s, side in SIDES:
        c, n, t, ax = sij_frame(pv, s)
        keep = HalfSpace(c + n * 1.0, -n, extent_mm=300.0)
        hip = pv.hips[side]
        w = _wing(pv, p, s, z_crest)
        pl: CurvedPlate = w["plate"]
        parts = []
        # posterior ilium (tuberosity) lateral to the joint, blended into the wing
        tub = Ellipsoid(frame(c + n * 10.0 - ax * 4.0, ax, n), radii=(20.0, 11.0, 32.0))
        parts.append(Union([tub, pl], smooth_mm=12.0))
        for cap in _crest(w).segments():
            parts.append(cap)
        # anterior superior iliac spine: a tubercle at the front end of the crest
        # (on the flat plane through the crest top, ≤ 5 mm inside the bowed wing's front)
        x_asis = w["sx"] * (pl.half_x - 5.0)
        asis = pl.point(x_asis, 8.0, dy=-float(pl.bow(x_asis, 8.0)))
        parts.append(Ellipsoid(frame(asis, w["e3"], w["lat"]), radii=(7.0, 6.0, 9.0)))
        crest_top = pl.point(0.0, pl.half_z - 3.0)
        # body of the ilium down to the acetabulum, ischium and pubis
        sciatic = c + n * 12.0 - ax * 30.0
        parts.append(Capsule(sciatic, hip, 12.0, 20.0))
        parts.append(Capsule(w["wing_c"] - w["e3"] * 30.0, hip, 10.0, 18.0))
        isch = hip + np.array([-s * 8.0, -28.0, -52.0])
        parts.append(Capsule(hip, isch, 15.0, 13.0))
        sym = np.array([s * 9.0, hip[1] + 52.0, hip[2] - 22.0])
        parts.append(Capsule(hip + np.array([-s * 10.0, 18.0, 8.0]), sym, 11.0, 9.0))
        parts.append(Capsule(sym + np.array([0, 0, -8.0]), isch, 8.0, 9.0))
        R = p.femoral_head_diameter / 2 + 2 * p.cartilage_mm
        ball = Ellipsoid(frame(hip, (0, 0, 1), (0, 1, 0)), radii=(R, R, R))
        ilium = Union([Subtract(Intersect([pt, keep]), ball) for pt in parts])
        ph.add("bone", ilium, "ilium")
        ph.add("joint", Box(frame(c - ax * 2.0, ax, n), half_mm=(16.0, 1.1, 30.0),
                            round_mm=1.0), "sij_space")
        pts[f"sij.{side}.inferior"] = c - ax * 24.0 + t * 8.0
        pts[f"sij.{side}.superior"] = c + ax * 18.0 + t * 4.0
        pts[f"asis.{side}"] = asis
        pts[f"iliac_crest.{side}"] = crest_top
        pts[f"psis.{side}"] = w["crest_post"]
    return pts


def _socket_opening(s: int) -> np.ndarray:
    o = np.array([s * 0.72, 0.32, -0.62])
    return o / np.linalg.norm(o)


def hip_strokes(ph: Phases, pv: Pelvis, p: PelvisDims, z_bottom: float) -> dict:
    """Acetabulum, capsule, cartilage, femoral head, neck, trochanters and upper shaft."""
    pts: dict[str, np.ndarray] = {}
    R = p.femoral_head_diameter / 2
    cart = p.cartilage_mm
    for s, side in SIDES:
        h = pv.hips[side]
        v = pv.neck_axis[side]
        base = h + v * (R + p.neck_length)
        opening = _socket_opening(s)
        sph = frame(h, (0, 0, 1), (0, 1, 0))
        # the socket is cut into a bone mass centred medial, posterior and above the head
        # centre (roof and posterior column thicker than the anterior wall), so its outer
        # surface is not concentric with the head
        mass = Ellipsoid(frame(h - opening * 7.0, (0, 0, 1), (0, 1, 0)),
                         radii=(R + 6.0, R + 8.0, R + 12.0))
        socket = Subtract(Intersect([mass, HalfSpace(h + opening * 6.0, opening,
                                                     extent_mm=80.0)]),
                          Ellipsoid(sph, radii=(R + 2 * cart,) * 3))
        ph.add("bone", socket, "acetabulum")
        ph.add("joint", Capsule(h, base - v * 4.0, R + 4.5, 18.5), "hip_capsule",
               never_into=BONE)
        ph.add("joint", Ellipsoid(sph, radii=(R + 2 * cart,) * 3), "hip_cartilage",
               never_into=(*BONE,))
        ph.add("joint", Ellipsoid(sph, radii=(R,) * 3), "femoral_head")
        shaft_top = base + np.array([s * 6.0, -2.0, -14.0])
        shaft_bot = np.array([shaft_top[0] - s * 10.0, shaft_top[1] + 4.0, z_bottom - 20.0])
        neck = Union([
            Capsule(h + v * (R * 0.55), base, 14.5, 17.0),
            Ellipsoid(frame(base + np.array([s * 10.0, -8.0, 8.0]), (0, 0, 1), (0, 1, 0)),
                      radii=(13.0, 16.0, 24.0)),  # greater trochanter
            Capsule(shaft_top, shaft_bot, 16.0, 14.0),
            Ellipsoid(frame(shaft_top + np.array([-s * 12.0, -8.0, -28.0]), (0, 0, 1),
                            (0, 1, 0)), radii=(9.0, 9.0, 11.0)),  # lesser trochanter
        ])
        ph.add("joint", neck, "femoral_neck", never_into=("femoral_head",))
        # the anterior head-neck junction, inside the capsule (the hip injection target)
        ant = np.array([0.0, 1.0, 0.0]) - v * v[1]
        ant /= np.linalg.norm(ant)
        pts[f"hip.{side}.femoral_neck"] = h + v * (R * 1.15) + ant * 18.5
        pts[f"hip.{side}.center"] = h
        pts[f"hip.{side}.neck_base"] = base
        pts[f"greater_trochanter.{side}"] = base + np.array([s * 10.0, -8.0, 8.0])
    return pts


__all__ = ["ilium_strokes", "hip_strokes"]
