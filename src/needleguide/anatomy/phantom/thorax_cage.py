"""The chest of the whole-spine phantom: body sections, ribs, lungs, heart, sternum,
clavicles and the thoracic trachea (shapes: *assumptions* after standard anatomy; rib
table in thoracic_dims.py).

Each rib leaves its vertebra at the costal facet (upper posterolateral corner of the
body), runs back along the front of the transverse process (costotransverse joint), turns
at its angle behind the transverse process and follows an elliptic ring round the chest,
descending towards its anterior end (posterior ribs slope down laterally on an AP image,
anterior ribs down medially). Lungs fill the chest inside the muscle wall, from above the
first rib to the costophrenic recesses at T12; the diaphragm domes (right higher) cut them
below; the heart sits low and left in front of the spine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from needleguide.anatomy.phantom.body import COLS
from needleguide.anatomy.phantom.cervical_geom import SectionColumn
from needleguide.anatomy.phantom.sdf import Box, Ellipsoid, Subtract, Tube
from needleguide.anatomy.phantom.spine import frame
from needleguide.anatomy.phantom.thoracic_dims import RibShape
from needleguide.anatomy.phantom.vertebra import Phases

WALL_MM = 16.0  # muscle wall of the chest (pectoral, serratus, intercostal), assumption
# core half width (mm) and depth in front of the vertebral body (mm) per thoracic level
# (no shoulder girdle); T11/T12 continue into the lumbar phantom's sections
CHEST = {"T1": (118.0, 58.0), "T2": (138.0, 74.0), "T3": (142.0, 88.0), "T4": (143.0, 98.0),
         "T5": (144.0, 107.0), "T6": (145.0, 115.0), "T7": (146.0, 120.0),
         "T8": (146.0, 122.0), "T9": (145.0, 120.0), "T10": (144.0, 116.0),
         "T11": (142.0, 112.0)}


@dataclass
class Base:
    """A vertebra seen from the chest: its truth name, centre, axes, body size, the tips
    of its transverse processes and its spinous tip (RAS mm)."""

    name: str
    P: Callable[[float, float, float], np.ndarray]
    W: float
    D: float
    H: float
    tp_tip: dict[str, np.ndarray]
    spinous_tip: np.ndarray

    @property
    def center(self) -> np.ndarray:
        return self.P(0.0, 0.0, 0.0)

    @property
    def front(self) -> np.ndarray:
        return self.P(0.0, self.D / 2, 0.0)


def chest_rows(bases: list[Base], m: float, fat_mm: float,
               paraspinal: dict[str, tuple[float, float, float, float]]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Body-layer rows (z, table) at the thoracic vertebrae T1…T10 (``bases``): core
    ellipse from behind the spinous tips to ``CHEST`` depth in front of the bodies, muscle
    wall ``WALL_MM``, the posterior muscle block behind the transverse processes,
    paraspinal muscles, fat as the lumbar phantom's lower thorax (0.8 ×)."""
    zs, rows = [], []
    for b in bases:
        ax, dep = CHEST[b.name]
        front = b.front
        tip = b.spinous_tip
        tp_y = 0.5 * (b.tp_tip["right"][1] + b.tp_tip["left"][1])
        cy = front[1]
        r = dict(cx=0.0, cy=cy, ax=ax * max(m, 1.0), ay_post=cy - (tip[1] - 8.0 * m),
                 ay_ant=dep * max(m, 1.0), w_post=0.15, w_ant=0.8, t_post=fat_mm,
                 t_lat=1.25 * fat_mm, t_ant=1.4 * fat_mm, wall=WALL_MM, y_back=tp_y - 2.0,
                 core_muscle=0.0, x_back=b.W / 2 + 42.0 * m)
        pm = paraspinal.get(b.name)
        if pm is not None:
            r.update(pm_cx=pm[0], pm_cy=pm[1], pm_rx=pm[2], pm_ry=pm[3])
        zs.append(float(b.center[2]))
        rows.append([r.get(c, 0.0) for c in COLS])
    return np.array(zs), np.array(rows)


def ring(table_at: Callable[[float], dict], z: float, y_post: float) -> tuple[float, float]:
    """(centre y, half depth) of the rib ring at height z: from ``y_post`` (rib angles) to
    the inner surface of the chest wall in front."""
    r = table_at(z)
    y_front = r["cy"] + r["ay_ant"] - WALL_MM - 4.0
    b = 0.5 * (y_front - y_post)
    return y_post + b, b


def rib_points(base: Base, side: str, shape: RibShape, scale: float,
               table_at: Callable[[float], dict]) -> tuple[np.ndarray, np.ndarray]:
    """Centre line (N, 3) and radii (N,) of the rib of ``base`` on ``side``."""
    s = 1 if side == "right" else -1
    W, D, H = base.W, base.D, base.H
    head = base.P(s * (W / 2 + 0.5), -D / 2 + 4.0, H / 2 - 1.5)
    neck = base.P(s * (W / 2 + 8.0), -D / 2 - 4.0, H / 2 - 3.0)
    tp = np.asarray(base.tp_tip[side], float)
    tub = tp + np.array([0.0, 4.5, -2.5])
    a = shape.half_width * scale
    y_post = tub[1] - 10.0
    yc, b = ring(table_at, float(tub[2]), y_post)
    phi0 = float(np.arcsin(np.clip((abs(tub[0]) + 14.0) / a, 0.0, 0.95)))
    phi1 = max(np.radians(shape.end_deg), phi0 + 0.2)
    pts = [head, neck, tub]
    for u in np.linspace(0.0, 1.0, 9):
        ph = phi0 + u * (phi1 - phi0)
        z = tub[2] - 4.0 - shape.drop * u ** 1.25
        pts.append(np.array([s * a * np.sin(ph), yc - b * np.cos(ph), z]))
    P = np.array(pts)
    R = np.concatenate([[shape.radius * 0.9] * 3,
                        np.linspace(shape.radius, 0.72 * shape.radius, 9)])
    return P, R


def rib_strokes(ph: Phases, ribs: dict[str, tuple[Base, RibShape]], scale: float,
                table_at: Callable[[float], dict]) -> dict[str, np.ndarray]:
    """Every rib pair (name → (vertebra, shape)); returns each rib's centre line."""
    out = {}
    for name, (base, shape) in ribs.items():
        for side in ("right", "left"):
            P, R = rib_points(base, side, shape, scale, table_at)
            ph.add("bone", Tube(P, R), "rib", never_into=("foramen", "nerve_root", "drg"))
            out[f"{name}.rib.{side}"] = P
    return out


def lung_strokes(ph: Phases, bases: list[Base], ribs: dict[str, tuple[Base, RibShape]],
                 scale: float, table_at: Callable[[float], dict], z_floor: float,
                 dome_z: dict[str, float]) -> None:
    """Lungs (into soft tissue only), cut by the diaphragm domes; the heart over them."""
    for side, s in (("right", 1), ("left", -1)):
        z, cx, cy, a, bb = [], [], [], [], []
        for base in bases:
            k = base.name
            shape = ribs[k][1] if k in ribs else None
            ra = (shape.half_width * scale if shape else 110.0) - 9.0
            tp_y = base.tp_tip[side][1]
            yc, b = ring(table_at, float(base.center[2]), tp_y - 14.0)
            x_med = base.W / 2 + 10.0
            z.append(float(base.center[2]))
            cx.append(s * 0.5 * (x_med + ra))
            a.append(0.5 * (ra - x_med))
            cy.append(yc + 2.0)
            bb.append(b - 6.0)
        top = bases[0]
        z.insert(0, float(top.center[2]) + 32.0)
        cx.insert(0, s * (top.W / 2 + 22.0))
        a.insert(0, 14.0)
        cy.insert(0, float(top.front[1]) - 8.0)
        bb.insert(0, 16.0)
        z.append(z_floor)
        cx.append(cx[-1])
        a.append(0.7 * a[-1])
        cy.append(cy[-1] - 30.0)
        bb.append(0.35 * bb[-1])
        order = np.argsort(z)
        col = SectionColumn(*(np.asarray(v, float)[order] for v in (z, cx, cy, a, bb)),
                            z_lo=min(z), z_hi=max(z))
        low = bases[-1]
        dome_c = np.array([s * 62.0, float(low.front[1]) + 55.0, dome_z[side] - 95.0])
        dome = Ellipsoid(frame(dome_c, (0, 0, 1), (0, 1, 0)), radii=(105.0, 125.0, 95.0))
        ph.add("organ", Subtract(col, dome), "lung", only_into=("soft_tissue",))


def heart_and_airway(ph: Phases, bases: dict[str, Base], table_at: Callable[[float], dict],
                     trachea_top: np.ndarray) -> None:
    """The heart (soft tissue over the left lower lung), the trachea from the neck to the
    carina at T5 and the main bronchi (air)."""
    t8 = bases["T8"]
    r = table_at(float(t8.center[2]))
    y_st = r["cy"] + r["ay_ant"] - WALL_MM
    ph.add("organ", Ellipsoid(frame(np.array([-20.0, y_st - 52.0, float(t8.center[2]) - 5.0]),
                                    (0.2, 0.1, 1), (0, 1, 0)), radii=(64.0, 46.0, 60.0)),
           "soft_tissue", only_into=("lung",))
    pts = [np.asarray(trachea_top, float)]
    for k in ("T3", "T4", "T5"):
        b = bases[k]
        pts.append(b.front + np.array([0.0, 17.0, 0.0]))
    car = pts[-1]
    tr = Tube(np.array(pts), np.full(len(pts), 8.0))
    into = ("soft_tissue", "lung", "muscle")
    ph.add("organ", tr, "internal_air", only_into=into)
    t6 = bases["T6"]
    for s, r_b in ((1, 6.5), (-1, 5.5)):
        end = np.array([s * 48.0, car[1] - 4.0, float(t6.center[2]) + (0.0 if s > 0 else 6.0)])
        ph.add("organ", Tube(np.array([car, end]), np.array([r_b, r_b - 1.0])), "internal_air",
               only_into=into)


def sternum_and_clavicles(ph: Phases, bases: dict[str, Base],
                          table_at: Callable[[float], dict]) -> dict[str, np.ndarray]:
    """Manubrium (jugular notch at the T2–T3 disc) and body (to T9), clavicles from the
    manubrium's upper corners over the first ribs to the shoulder."""
    z_jn = 0.5 * (float(bases["T2"].center[2]) + float(bases["T3"].center[2]))
    z_xi = float(bases["T9"].center[2])

    def front(z: float, inset: float) -> float:
        r = table_at(z)
        return r["cy"] + r["ay_ant"] - inset

    man_c = np.array([0.0, front(z_jn - 24.0, 8.0), z_jn - 24.0])
    ph.add("bone", Box(frame(man_c, (0, -0.25, 1), (0, 1, 0)), half_mm=(26.0, 6.5, 24.0),
                       round_mm=4.0), "sternum")
    zb = 0.5 * (z_jn - 48.0 + z_xi)
    body_c = np.array([0.0, front(zb, 7.0), zb])
    up = np.array([0.0, front(z_jn - 48.0, 7.0) - front(z_xi, 7.0), z_jn - 48.0 - z_xi])
    ph.add("bone", Box(frame(body_c, up, (0, 1, 0)),
                       half_mm=(15.0, 5.5, 0.5 * float(np.linalg.norm(up)) + 2.0),
                       round_mm=3.0), "sternum")
    out = {"jugular_notch": np.array([0.0, man_c[1], z_jn])}
    for side, s in (("right", 1), ("left", -1)):
        r = table_at(z_jn + 12.0)
        xl = r["ax"] - 18.0
        yf = front(z_jn, 10.0)
        pts = np.array([[s * 20.0, yf - 2.0, z_jn + 2.0], [s * 55.0, yf - 8.0, z_jn + 7.0],
                        [s * 0.75 * xl, yf - 26.0, z_jn + 12.0],
                        [s * xl, yf - 52.0, z_jn + 16.0]])
        ph.add("bone", Tube(pts, np.array([7.0, 5.5, 5.5, 6.5])), "clavicle")
        out[f"clavicle.{side}"] = pts
    return out


__all__ = ["Base", "chest_rows", "rib_strokes", "lung_strokes", "heart_and_airway",
           "sternum_and_clavicles", "CHEST", "WALL_MM"]
