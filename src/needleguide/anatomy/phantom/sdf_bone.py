"""Bone primitives for the parametric phantom (same contract as :mod:`sdf`).

- :class:`WaistedBody`: a vertebral body — elliptic front, squarer back (superellipse),
  concave ("waisted") walls that flare to the end-plate rims, end plates with a central
  depression inside a flat peripheral ring (the ring apophysis), rounded rim edges.
- :class:`TaperedBox`: a rounded box whose section changes linearly along its local z
  (processes that narrow towards their tip: spinous, transverse, articular processes).
- :class:`CurvedPlate`: a bowed plate of varying thickness with an elliptic outline
  (the iliac wing: thin in the fossa, thick at the rim).

Distances are first-order estimates (value / gradient norm), accurate near the surface
and within the painter's safety factor further away; for labelling only the sign matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide.anatomy.phantom.sdf import F, Oriented, _bbox_of_local_box, _local


def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (F(3.0) - F(2.0) * t)


def _round_combine(d_xy, d_z, r):
    """Distance of a rounded extrusion from its in-plane and axial distances (iq)."""
    r = F(r)
    qx = d_xy + r
    qz = d_z + r
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qz, 0) ** 2)
    inside = np.minimum(np.maximum(qx, qz), 0)
    return (outside + inside - r).astype(F)


@dataclass
class WaistedBody(Oriented):
    """Vertebral body in its local frame (x right, y anterior, z = end-plate normal).

    half_width / half_depth_ant / half_depth_post: the end-plate rim outline (mm);
    half_height: centre to the rim of either end plate; waist_x / waist_y: how much
    narrower (per side, mm) the walls are at mid-height (parabolic profile, flaring to
    the rims); post_n: superellipse exponent of the posterior half (2 = elliptic);
    cup_top / cup_bottom: central end-plate depression (mm) inside the ring apophysis,
    rising from ``rim_start`` to ``rim_full`` of the radius (flat outside: the ring
    apophysis); round_mm: rim edge radius.
    """

    half_width: float = 20.0
    half_depth_ant: float = 16.0
    half_depth_post: float = 16.0
    half_height: float = 12.0
    waist_x: float = 2.5
    waist_y: float = 2.0
    post_n: float = 3.0
    cup_top: float = 0.7
    cup_bottom: float = 1.5
    rim_start: float = 0.55
    rim_full: float = 0.8
    round_mm: float = 1.5

    def sdf(self, p):
        q = _local(p, self.PatientToLocal)
        x, y, z = q[0], q[1], q[2]
        h = F(self.half_height)
        u = np.clip(np.abs(z) / h, 0, 1)
        pinch = F(1.0) - u * u
        ax = F(self.half_width) - F(self.waist_x) * pinch
        ay_a = F(self.half_depth_ant) - F(self.waist_y) * pinch
        ay_p = F(self.half_depth_post) - F(0.25 * self.waist_y) * pinch
        post = y < 0
        ay = np.where(post, ay_p, ay_a)
        n = np.where(post, F(self.post_n), F(2.0))
        tx = np.abs(x) / ax
        ty = np.abs(y) / ay
        k = (tx ** n + ty ** n) ** (F(1.0) / n)
        # gradient of the gauge k: k^(1-n) (tx^(n-1)/ax, ty^(n-1)/ay)
        kk = np.maximum(k, F(1e-6))
        g = kk ** (F(1.0) - n) * np.sqrt((tx ** (n - 1) / ax) ** 2 + (ty ** (n - 1) / ay) ** 2)
        d_xy = np.where(k > F(1e-6), (k - F(1.0)) / np.maximum(g, F(1e-6)),
                        -np.minimum(ax, ay))
        # end plates: central cup inside the ring apophysis (flat outer ring)
        cup = np.where(z >= 0, F(self.cup_top), F(self.cup_bottom))
        rs = F(self.rim_start)
        ring = _smoothstep((k - rs) / F(self.rim_full - self.rim_start))
        z_face = h - cup * (F(1.0) - ring)
        slope = F(1.5) * max(self.cup_top, self.cup_bottom) / (
            (self.rim_full - self.rim_start) * min(self.half_width, self.half_depth_post))
        d_z = (np.abs(z) - z_face) / np.sqrt(F(1.0) + F(slope) ** 2)
        return _round_combine(d_xy, d_z, self.round_mm)

    def bbox(self):
        b = max(self.half_depth_ant, self.half_depth_post)
        r = np.array([self.half_width, b, self.half_height]) + 0.5
        return _bbox_of_local_box(self.LocalToPatient, -r, r)


@dataclass
class TaperedBox(Oriented):
    """Rounded box along local z (|z| <= half_height): section half extents ``half_lo``
    (x, y) at z = -half_height changing linearly to ``half_hi`` at +half_height."""

    half_lo: tuple[float, float] = (2.0, 2.0)
    half_hi: tuple[float, float] = (1.0, 1.0)
    half_height: float = 5.0
    round_mm: float = 0.5

    def sdf(self, p):
        q = _local(p, self.PatientToLocal)
        h = F(self.half_height)
        r = F(self.round_mm)
        t = (np.clip(q[2], -h, h) + h) / (2 * h)
        hx = F(self.half_lo[0]) + (F(self.half_hi[0]) - F(self.half_lo[0])) * t
        hy = F(self.half_lo[1]) + (F(self.half_hi[1]) - F(self.half_lo[1])) * t
        slope = max(abs(self.half_hi[0] - self.half_lo[0]),
                    abs(self.half_hi[1] - self.half_lo[1])) / (2 * self.half_height)
        c = F(1.0 / np.sqrt(1.0 + slope * slope))  # the sloped sides: distance ≈ c · Δ
        d = np.stack([(np.abs(q[0]) - (hx - r)) * c, (np.abs(q[1]) - (hy - r)) * c,
                      np.abs(q[2]) - (h - r)])
        outside = np.sqrt((np.maximum(d, 0) ** 2).sum(axis=0))
        inside = np.minimum(d.max(axis=0), 0)
        return (outside + inside - r).astype(F)

    def bbox(self):
        hx = max(self.half_lo[0], self.half_hi[0])
        hy = max(self.half_lo[1], self.half_hi[1])
        r = np.array([hx, hy, self.half_height])
        return _bbox_of_local_box(self.LocalToPatient, -r, r)


@dataclass
class CurvedPlate(Oriented):
    """A bowed plate: mid-surface y = bow(x, z) = c0 - x²/(2 rx) - z²/(2 rz) + S(x) in its
    local frame (c0 puts the top centre (0, half_z) on y = 0; S(x) = s_mm · 2.6 u (1 - u²),
    u = x / half_x, an S-shaped sweep of ±s_mm); thickness growing from ``t_centre`` to
    ``t_rim`` towards the elliptic outline (half_x, half_z), plus up to ``t_low`` towards
    its lower end (z = -half_z: where the wing becomes the body of the ilium)."""

    half_x: float = 60.0
    half_z: float = 60.0
    rx: float = 250.0
    rz: float = 250.0
    s_mm: float = 0.0
    t_centre: float = 2.5
    t_rim: float = 6.0
    t_low: float = 0.0
    round_mm: float = 1.0

    def bow(self, x, z):
        u = np.asarray(x) / self.half_x
        return (self.half_z ** 2 / (2 * self.rz) - np.asarray(x) ** 2 / (2 * self.rx)
                - np.asarray(z) ** 2 / (2 * self.rz) + self.s_mm * 2.6 * u * (1 - u * u))

    def point(self, x: float, z: float, dy: float = 0.0) -> np.ndarray:
        """Patient RAS of the local mid-surface point at (x, z), offset dy along y."""
        loc = np.array([x, float(self.bow(x, z)) + dy, z, 1.0])
        T = np.eye(4) if self.LocalToPatient is None else self.LocalToPatient
        return (T @ loc)[:3]

    def sdf(self, p):
        q = _local(p, self.PatientToLocal)
        x, y, z = q[0], q[1], q[2]
        ax, az = F(self.half_x), F(self.half_z)
        k0 = np.sqrt((x / ax) ** 2 + (z / az) ** 2)
        k1 = np.sqrt((x / (ax * ax)) ** 2 + (z / (az * az)) ** 2)
        d_fp = np.where(k1 > F(1e-6), k0 * (k0 - 1.0) / np.maximum(k1, F(1e-6)),
                        -np.minimum(ax, az))
        t = F(self.t_centre) + (F(self.t_rim) - F(self.t_centre)) * np.minimum(k0, 1) ** 2 \
            + F(self.t_low) * np.clip(-z / az, 0, 1) ** 2
        u = x / ax
        ym = F(self.half_z ** 2 / (2 * self.rz)) - x * x / F(2 * self.rx) - \
            z * z / F(2 * self.rz) + F(2.6 * self.s_mm) * u * (F(1.0) - u * u)
        dydx = -x / F(self.rx) + F(2.6 * self.s_mm) * (F(1.0) - F(3.0) * u * u) / ax
        grad = np.sqrt(F(1.0) + dydx ** 2 + (z / F(self.rz)) ** 2)
        d_y = (np.abs(y - ym) - t / 2) / grad
        return _round_combine(d_fp, d_y, self.round_mm)

    def bbox(self):
        t = self.t_rim + self.t_low
        lo_y = self.bow(self.half_x, self.half_z) - t - abs(self.s_mm)
        hi_y = self.half_z ** 2 / (2 * self.rz) + t + abs(self.s_mm)
        return _bbox_of_local_box(self.LocalToPatient, (-self.half_x, lo_y, -self.half_z),
                                  (self.half_x, hi_y, self.half_z))


__all__ = ["WaistedBody", "TaperedBox", "CurvedPlate"]
