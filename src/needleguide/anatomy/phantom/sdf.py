"""Signed distance functions (SDF) for the parametric phantom.

Every shape maps RAS points (3, N) in mm (structure of arrays, for speed) to a signed
distance in mm (negative inside) and knows its RAS bounding box, so that painting touches
only the voxels near it. Distances
are exact for spheres, capsules and boxes and a close bound elsewhere (ellipsoids,
elliptic cylinders); for labelling only the sign matters, and shells (capsules, cortex)
use the near-surface distance, which is accurate. All arrays are float32 for speed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from needleguide import geometry

F = np.float32


def _as3(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).reshape(3)


class Shape(ABC):
    """Base class: ``sdf(points)`` and ``bbox()`` (RAS min, max in mm)."""

    @abstractmethod
    def sdf(self, p: np.ndarray) -> np.ndarray:
        """Signed distance (mm, negative inside) of points (3, N) in RAS mm."""

    @abstractmethod
    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        """RAS bounding box (min, max) in mm."""

    # composition sugar
    def __or__(self, other: Shape) -> Shape:
        return Union([self, other])

    def __and__(self, other: Shape) -> Shape:
        return Intersect([self, other])

    def __sub__(self, other: Shape) -> Shape:
        return Subtract(self, other)

    def shell(self, thickness_mm: float) -> Shape:
        """The layer of ``thickness_mm`` just outside this shape's surface."""
        return Shell(self, thickness_mm)

    def grown(self, mm: float) -> Shape:
        """This shape dilated (positive) or eroded (negative) by ``mm``."""
        return Offset(self, mm)


def _local(p: np.ndarray, PatientToLocal: np.ndarray | None) -> np.ndarray:
    if PatientToLocal is None:
        return p
    r = PatientToLocal[:3, :3].astype(F)
    t = PatientToLocal[:3, 3].astype(F)
    return r @ p + t[:, None]


def _bbox_of_local_box(LocalToPatient: np.ndarray | None, lo, hi):
    lo = np.asarray(lo, float)
    hi = np.asarray(hi, float)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for z in (lo[2], hi[2])])
    if LocalToPatient is not None:
        corners = geometry.apply(LocalToPatient, corners)
    return corners.min(axis=0), corners.max(axis=0)


@dataclass
class Oriented(Shape):
    """Mixin holding a ``LocalToPatient`` frame (None = axis-aligned at the origin)."""

    LocalToPatient: np.ndarray | None = None

    @property
    def PatientToLocal(self):
        return None if self.LocalToPatient is None else geometry.invert(self.LocalToPatient)


@dataclass
class Ellipsoid(Oriented):
    """Ellipsoid with semi-axes ``radii`` (mm) in its local frame, centred at local origin."""

    radii: Sequence[float] = (1.0, 1.0, 1.0)

    def sdf(self, p):
        q = _local(p, self.PatientToLocal)
        r = np.asarray(self.radii, F)[:, None]
        k0 = np.sqrt(((q / r) ** 2).sum(axis=0))
        k1 = np.sqrt(((q / (r * r)) ** 2).sum(axis=0))
        # on the centre k0 = k1 = 0: the bound's limit there is -min(radius), not 0
        d = np.where(k1 > F(1e-6), k0 * (k0 - 1.0) / np.maximum(k1, F(1e-6)), -r.min())
        return d.astype(F)

    def bbox(self):
        r = np.asarray(self.radii, float)
        return _bbox_of_local_box(self.LocalToPatient, -r, r)


@dataclass
class Box(Oriented):
    """Box with half extents ``half_mm`` in its local frame, edges rounded by ``round_mm``."""

    half_mm: Sequence[float] = (1.0, 1.0, 1.0)
    round_mm: float = 0.0

    def sdf(self, p):
        half = (np.asarray(self.half_mm, F) - F(self.round_mm))[:, None]
        q = np.abs(_local(p, self.PatientToLocal)) - half
        outside = np.sqrt((np.maximum(q, 0) ** 2).sum(axis=0))
        inside = np.minimum(q.max(axis=0), 0)
        return (outside + inside - F(self.round_mm)).astype(F)

    def bbox(self):
        h = np.asarray(self.half_mm, float)
        return _bbox_of_local_box(self.LocalToPatient, -h, h)


@dataclass
class EllipticCylinder(Oriented):
    """Cylinder along local z (|z| <= half_height_mm) with elliptic section (rx, ry) mm,
    optionally tapering linearly to ``top_scale`` × the section at +z, rounded edges."""

    radii: Sequence[float] = (1.0, 1.0)
    half_height_mm: float = 1.0
    top_scale: float = 1.0
    round_mm: float = 0.0

    def sdf(self, p):
        q = _local(p, self.PatientToLocal)
        h = F(self.half_height_mm)
        s = F(1.0) + (F(self.top_scale) - F(1.0)) * (np.clip(q[2], -h, h) + h) / (2 * h)
        rx = F(self.radii[0]) * s - F(self.round_mm)
        ry = F(self.radii[1]) * s - F(self.round_mm)
        k0 = np.sqrt((q[0] / rx) ** 2 + (q[1] / ry) ** 2)
        k1 = np.sqrt((q[0] / (rx * rx)) ** 2 + (q[1] / (ry * ry)) ** 2)
        d2 = np.where(k1 > F(1e-6), k0 * (k0 - 1.0) / np.maximum(k1, F(1e-6)),
                      -np.minimum(rx, ry))
        dz = np.abs(q[2]) - (h - F(self.round_mm))
        outside = np.sqrt(np.maximum(d2, 0) ** 2 + np.maximum(dz, 0) ** 2)
        inside = np.minimum(np.maximum(d2, dz), 0)
        return (outside + inside - F(self.round_mm)).astype(F)

    def bbox(self):
        s = max(1.0, self.top_scale)
        r = np.array([self.radii[0] * s, self.radii[1] * s, self.half_height_mm])
        return _bbox_of_local_box(self.LocalToPatient, -r, r)


@dataclass
class Capsule(Shape):
    """Segment a–b (RAS mm) swept by a radius varying linearly from ``ra`` to ``rb`` mm."""

    a: Sequence[float] = (0.0, 0.0, 0.0)
    b: Sequence[float] = (0.0, 0.0, 1.0)
    ra: float = 1.0
    rb: float | None = None

    def sdf(self, p):
        a = _as3(self.a).astype(F)[:, None]
        b = _as3(self.b).astype(F)[:, None]
        rb = self.ra if self.rb is None else self.rb
        ba = b - a
        L2 = F(max(float((ba * ba).sum()), 1e-12))
        pa = p - a
        h = np.clip((pa * ba).sum(axis=0) / L2, 0, 1)
        d = np.sqrt(((pa - h[None, :] * ba) ** 2).sum(axis=0))
        return (d - (F(self.ra) + (F(rb) - F(self.ra)) * h)).astype(F)

    def bbox(self):
        r = max(self.ra, self.ra if self.rb is None else self.rb)
        a, b = _as3(self.a), _as3(self.b)
        return np.minimum(a, b) - r, np.maximum(a, b) + r


@dataclass
class Tube(Shape):
    """A polyline (N, 3) RAS mm with radii (N,) mm: the union of tapered capsules."""

    points_mm: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    radii_mm: np.ndarray = field(default_factory=lambda: np.ones(2))

    def segments(self) -> list[Capsule]:
        P = np.asarray(self.points_mm, float)
        R = np.broadcast_to(np.asarray(self.radii_mm, float), (len(P),))
        return [Capsule(P[i], P[i + 1], float(R[i]), float(R[i + 1])) for i in range(len(P) - 1)]

    def sdf(self, p):
        d = None
        for c in self.segments():
            lo, hi = c.bbox()
            m = np.all((p >= lo[:, None] - 1e-3) & (p <= hi[:, None] + 1e-3), axis=0)
            dc = np.full(p.shape[1], np.inf, dtype=F)
            if m.any():
                dc[m] = c.sdf(p[:, m])
            d = dc if d is None else np.minimum(d, dc)
        return d

    def bbox(self):
        P = np.asarray(self.points_mm, float)
        r = float(np.max(self.radii_mm))
        return P.min(axis=0) - r, P.max(axis=0) + r


@dataclass
class HalfSpace(Shape):
    """Points on the side of a plane opposite to ``normal`` (inside = below the plane)."""

    point: Sequence[float] = (0.0, 0.0, 0.0)
    normal: Sequence[float] = (0.0, 0.0, 1.0)
    extent_mm: float = 1e4

    def sdf(self, p):
        n = _as3(self.normal)
        n = (n / np.linalg.norm(n)).astype(F)
        return ((p - _as3(self.point).astype(F)[:, None]) * n[:, None]).sum(axis=0).astype(F)

    def bbox(self):
        c = _as3(self.point)
        return c - self.extent_mm, c + self.extent_mm


@dataclass
class Union(Shape):
    shapes: list[Shape] = field(default_factory=list)
    smooth_mm: float = 0.0

    def sdf(self, p):
        d = self.shapes[0].sdf(p)
        for s in self.shapes[1:]:
            e = s.sdf(p)
            if self.smooth_mm > 0:
                k = F(self.smooth_mm)
                h = np.clip(0.5 + 0.5 * (e - d) / k, 0, 1)
                d = e * (1 - h) + d * h - k * h * (1 - h)
            else:
                d = np.minimum(d, e)
        return d.astype(F)

    def bbox(self):
        bs = [s.bbox() for s in self.shapes]
        pad = self.smooth_mm
        return (np.min([b[0] for b in bs], axis=0) - pad, np.max([b[1] for b in bs], axis=0) + pad)


@dataclass
class Intersect(Shape):
    shapes: list[Shape] = field(default_factory=list)

    def sdf(self, p):
        d = self.shapes[0].sdf(p)
        for s in self.shapes[1:]:
            d = np.maximum(d, s.sdf(p))
        return d

    def bbox(self):
        bs = [s.bbox() for s in self.shapes]
        return np.max([b[0] for b in bs], axis=0), np.min([b[1] for b in bs], axis=0)


@dataclass
class Subtract(Shape):
    base: Shape = None  # type: ignore[assignment]
    cut: Shape = None  # type: ignore[assignment]

    def sdf(self, p):
        return np.maximum(self.base.sdf(p), -self.cut.sdf(p))

    def bbox(self):
        return self.base.bbox()


@dataclass
class Offset(Shape):
    base: Shape = None  # type: ignore[assignment]
    mm: float = 0.0

    def sdf(self, p):
        return (self.base.sdf(p) - F(self.mm)).astype(F)

    def bbox(self):
        lo, hi = self.base.bbox()
        return lo - max(self.mm, 0), hi + max(self.mm, 0)


@dataclass
class Shell(Shape):
    """Layer of ``thickness_mm`` just outside ``base`` (0 < d <= thickness)."""

    base: Shape = None  # type: ignore[assignment]
    thickness_mm: float = 1.0

    def sdf(self, p):
        d = self.base.sdf(p)
        t = F(self.thickness_mm) / 2
        return (np.abs(d - t) - t).astype(F)

    def bbox(self):
        lo, hi = self.base.bbox()
        return lo - self.thickness_mm, hi + self.thickness_mm
