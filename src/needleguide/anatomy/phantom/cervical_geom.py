"""Cervical phantom geometry: dimensions, the lordotic spinal curve and vertebral frames.

Patient frame RAS (x right, y anterior, z superior), mm. Origin: the centre of the C5–C6
disc. Each vertebra has a local frame (u = right, v = anterior, w = end-plate normal)
with its origin at the centre of its body (for C1: the dens axis at the height of the
atlas ring). Dimensions are rounded typical adult values consistent with Panjabi et al.,
Spine 1991;16:861 (C3–C7 end-plate width/depth, canal width/depth, pedicles) and Gilad &
Nissan, Spine 1986;11:154 (body and disc heights); see docs/anatomy_cervical.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from needleguide.anatomy.phantom.sdf import Capsule, F, Shape, Union

# name: body width W, depth D, height H (mm), disc height below (mm), canal width, canal
# depth (mm), spinous length (lamina junction -> tip, mm), spinous down-slope (deg)
DIMS: dict[str, tuple[float, ...]] = {
    "C2": (17.0, 15.5, 15.0, 4.5, 25.0, 16.0, 22.0, 20.0),
    "C3": (15.5, 15.5, 14.0, 5.0, 24.0, 14.0, 13.0, 20.0),
    "C4": (16.0, 15.5, 13.5, 5.0, 24.5, 14.0, 14.0, 22.0),
    "C5": (17.0, 16.0, 13.5, 5.5, 24.5, 14.0, 16.0, 24.0),
    "C6": (18.5, 16.5, 14.0, 5.5, 24.5, 14.0, 20.0, 26.0),
    "C7": (20.0, 16.5, 15.0, 5.0, 23.5, 14.0, 30.0, 32.0),
    "T1": (23.0, 17.0, 16.0, 5.0, 21.0, 14.0, 32.0, 38.0),
    "T2": (24.0, 18.0, 17.0, 5.0, 17.5, 14.0, 33.0, 45.0),
}
NAMES = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2")
SUBAXIAL = ("C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2")
# facet inclination from the axial plane (deg) of the joint below each vertebra
FACET_DEG = {"C2": 40.0, "C3": 45.0, "C4": 45.0, "C5": 45.0, "C6": 50.0, "C7": 60.0,
             "T1": 65.0, "T2": 65.0}


@dataclass
class Level:
    """One vertebra: dimensions and pose (LocalToPatient, origin = body centre)."""

    name: str
    T: np.ndarray
    W: float
    D: float
    H: float
    disc_below: float
    canal_w: float
    canal_d: float
    sp_len: float
    sp_slope_deg: float
    info: dict = field(default_factory=dict)

    def P(self, u: float, v: float, w: float) -> np.ndarray:
        """Patient RAS (mm) of the local point (u right, v anterior, w superior)."""
        return self.T[:3, :3] @ np.array([u, v, w], float) + self.T[:3, 3]

    def V(self, u: float, v: float, w: float) -> np.ndarray:
        """Patient direction of a local vector."""
        return self.T[:3, :3] @ np.array([u, v, w], float)

    def at(self, u: float, v: float, w: float, R_local: np.ndarray | None = None) -> np.ndarray:
        """LocalToPatient of a sub-frame at a local point (optionally rotated locally)."""
        out = np.eye(4)
        out[:3, :3] = self.T[:3, :3] if R_local is None else self.T[:3, :3] @ R_local
        out[:3, 3] = self.P(u, v, w)
        return out

    @property
    def center(self) -> np.ndarray:
        return self.T[:3, 3].copy()

    @property
    def pillar_u(self) -> float:
        """|u| of the articular pillar axis (mm)."""
        return self.canal_w / 2 + 5.0

    @property
    def pillar_v(self) -> float:
        return -self.D / 2 - 10.5

    @property
    def canal_v(self) -> float:
        """v of the canal centre."""
        return -self.D / 2 - self.canal_d / 2


def frame_from_zy(origin, z_axis, y_hint) -> np.ndarray:
    """LocalToPatient with local z along ``z_axis``, local y closest to ``y_hint``."""
    z = np.asarray(z_axis, float)
    z = z / np.linalg.norm(z)
    y = np.asarray(y_hint, float)
    y = y - z * (y @ z)
    y = y / np.linalg.norm(y)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = np.cross(y, z), y, z, np.asarray(origin, float)
    return T


def _rot(axis: int, deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


@dataclass
class SpineLayout:
    levels: dict[str, Level]
    lordosis_deg: float
    discs: dict[str, np.ndarray]  # "C5-C6" -> disc frame (origin = disc centre)
    disc_h: dict[str, float]


def layout(rng: np.random.Generator, lordosis_deg: float, disc_loss: float,
           size_scale: float) -> SpineLayout:
    """Poses of C1–T2 along a circular lordotic arc (C2–C7 Cobb = ``lordosis_deg``) with
    per-level random tilt/rotation (SD 1.5°), dimensions scaled by ``size_scale`` × a
    per-level factor (SD 2 %), disc heights × (1 − ``disc_loss``)."""
    dims = {}
    for n in SUBAXIAL:
        W, D, H, d, cw, cd, spl, sps = DIMS[n]
        f = size_scale * float(rng.normal(1.0, 0.02))
        dims[n] = [W * f, D * f, H * f, d * f * (1.0 - disc_loss), cw * size_scale,
                   cd * size_scale, spl * f, sps]
    # arc positions of body centres; s = 0 at the C5-C6 disc centre
    s: dict[str, float] = {}
    s["C5"] = dims["C5"][3] / 2 + dims["C5"][2] / 2
    for up, lo in (("C4", "C5"), ("C3", "C4"), ("C2", "C3")):
        s[up] = s[lo] + dims[lo][2] / 2 + dims[up][3] + dims[up][2] / 2
    s["C6"] = -(dims["C5"][3] / 2 + dims["C6"][2] / 2)
    for up, lo in (("C6", "C7"), ("C7", "T1"), ("T1", "T2")):
        s[lo] = s[up] - dims[up][2] / 2 - dims[up][3] - dims[lo][2] / 2
    s_c2b = s["C2"] - dims["C2"][2] / 2
    s_c7b = s["C7"] - dims["C7"][2] / 2
    kc = np.radians(lordosis_deg) / (s_c2b - s_c7b)
    kt = -np.radians(40.0) / 250.0  # thoracic kyphosis ~40 deg over T1-T12 (assumption)
    grid = np.arange(-120.0, 160.0, 0.25)
    kappa = np.where(grid < s_c7b, kt, kc)
    i0 = int(np.argmin(np.abs(grid)))
    phi = np.concatenate([[0.0], np.cumsum(0.5 * (kappa[1:] + kappa[:-1]) * 0.25)])
    phi -= phi[i0]
    ty, tz = -np.sin(phi), np.cos(phi)
    py = np.concatenate([[0.0], np.cumsum(0.5 * (ty[1:] + ty[:-1]) * 0.25)])
    pz = np.concatenate([[0.0], np.cumsum(0.5 * (tz[1:] + tz[:-1]) * 0.25)])
    py -= py[i0]
    pz -= pz[i0]

    def pose(sv: float, jitter: bool = True) -> np.ndarray:
        ph = float(np.interp(sv, grid, phi))
        sup = np.array([0.0, -np.sin(ph), np.cos(ph)])
        ant = np.array([0.0, np.cos(ph), np.sin(ph)])
        R = np.column_stack([np.array([1.0, 0, 0]), ant, sup])
        if jitter:
            R = R @ _rot(2, rng.normal(0, 1.5)) @ _rot(1, rng.normal(0, 1.0)) \
                @ _rot(0, rng.normal(0, 1.5))
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = [0.0, np.interp(sv, grid, py), np.interp(sv, grid, pz)]
        return T

    levels: dict[str, Level] = {}
    for n in SUBAXIAL:
        levels[n] = Level(n, pose(s[n]), *dims[n])
    # atlas: ring at the dens, lateral masses 3 mm above the C2 body top
    c2 = levels["C2"]
    t1 = c2.at(0.0, 0.75, c2.H / 2 + 10.5, _rot(0, rng.normal(0, 2.0)))
    levels["C1"] = Level("C1", t1, W=50.0 * size_scale, D=45.0 * size_scale, H=10.0,
                         disc_below=0.0, canal_w=28.0 * size_scale,
                         canal_d=30.0 * size_scale, sp_len=0.0, sp_slope_deg=0.0)
    discs: dict[str, np.ndarray] = {}
    disc_h: dict[str, float] = {}
    order = SUBAXIAL
    for up, lo in zip(order[:-1], order[1:], strict=True):
        U, L = levels[up], levels[lo]
        a, b = U.P(0, 0, -U.H / 2), L.P(0, 0, L.H / 2)
        sup = U.V(0, 0, 1) + L.V(0, 0, 1)
        ant = U.V(0, 1, 0) + L.V(0, 1, 0)
        discs[f"{up}-{lo}"] = frame_from_zy((a + b) / 2, sup, ant)
        disc_h[f"{up}-{lo}"] = float(np.linalg.norm(a - b))
    return SpineLayout(levels, lordosis_deg, discs, disc_h)


@dataclass
class SectionColumn(Shape):
    """A column whose axial (horizontal) section at height z is an ellipse centred
    (cx(z), cy(z)) with semi-axes (a(z), b(z)) mm, piecewise linear in z between the
    control heights ``zs`` (ascending), closed by the planes z = z_lo and z = z_hi.

    Cheap (a few interpolations per point) and continuous: used for the neck outline and
    its layers, muscle compartments, the airway, the oesophagus and the canal contents.
    Distances are a close bound (ellipse approximation, ×0.9 for sloping walls)."""

    zs: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    cx: np.ndarray = field(default_factory=lambda: np.zeros(2))
    cy: np.ndarray = field(default_factory=lambda: np.zeros(2))
    a: np.ndarray = field(default_factory=lambda: np.ones(2))
    b: np.ndarray = field(default_factory=lambda: np.ones(2))
    z_lo: float = -1e4
    z_hi: float = 1e4
    grow_mm: float = 0.0

    def _params(self, z):
        zs = np.asarray(self.zs, F)
        return [np.interp(z, zs, np.asarray(v, F)).astype(F) for v in
                (self.cx, self.cy, self.a, self.b)]

    def sdf(self, p):
        cx, cy, a, b = self._params(p[2])
        a = np.maximum(a + F(self.grow_mm), F(0.3))
        b = np.maximum(b + F(self.grow_mm), F(0.3))
        x, y = p[0] - cx, p[1] - cy
        k0 = np.sqrt((x / a) ** 2 + (y / b) ** 2)
        k1 = np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2)
        d = F(0.9) * k0 * (k0 - 1) / np.maximum(k1, F(1e-6))
        d = np.where(k0 < F(1e-3), -F(0.9) * np.minimum(a, b), d)  # on the axis
        dz = np.maximum(F(self.z_lo) - p[2], p[2] - F(self.z_hi))
        return np.maximum(d, dz).astype(F)

    def bbox(self):
        zs = np.asarray(self.zs, float)
        zlo = self.z_lo if self.z_lo > -1e3 else zs[0]  # sections clamp beyond the rows
        zhi = self.z_hi if self.z_hi < 1e3 else zs[-1]
        m = (zs >= zlo - 1e-9) & (zs <= zhi + 1e-9)
        # include interpolated end sections
        sel = [np.interp([zlo, zhi], zs, np.asarray(v, float)) for v in
               (self.cx, self.cy, self.a, self.b)]
        cx = np.concatenate([np.asarray(self.cx, float)[m], sel[0]])
        cy = np.concatenate([np.asarray(self.cy, float)[m], sel[1]])
        a = np.concatenate([np.asarray(self.a, float)[m], sel[2]]) + self.grow_mm
        b = np.concatenate([np.asarray(self.b, float)[m], sel[3]]) + self.grow_mm
        lo = np.array([(cx - a).min(), (cy - b).min(), zlo])
        hi = np.array([(cx + a).max(), (cy + b).max(), zhi])
        return lo, hi

    def grown(self, mm: float) -> SectionColumn:  # type: ignore[override]
        """The same column with both semi-axes enlarged by ``mm`` (negative shrinks)."""
        return SectionColumn(self.zs, self.cx, self.cy, self.a, self.b, self.z_lo,
                             self.z_hi, self.grow_mm + mm)


def tube(points_mm, radii_mm) -> Union:
    """A polyline tube as a union of tapered capsules: the painter paints each capsule
    over its own small bounding box (much cheaper than one long tube's box)."""
    P = np.asarray(points_mm, float)
    R = np.broadcast_to(np.asarray(radii_mm, float), (len(P),))
    return Union([Capsule(P[i], P[i + 1], float(R[i]), float(R[i + 1]))
                  for i in range(len(P) - 1)])
