"""Spinal curve: poses of T11–L5 and S1 from the lordosis, disc heights and body heights.

Patient frame RAS (x right, y anterior, z superior), mm. Origin: the centre of the L4–L5
disc. Every vertebra has a local frame (x right, y anterior, z = end-plate normal) with its
origin at the centre of its body; the sagittal tilt of the end plates gives the lordosis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide.anatomy.phantom.anthropometry import LEVELS, TILT_DEG, VertebraDims


def frame(origin, z_axis, y_hint) -> np.ndarray:
    """LocalToPatient 4x4 with local z along ``z_axis`` and local y as close to ``y_hint``
    as orthogonality allows; x = y × z (right-handed)."""
    z = np.asarray(z_axis, float)
    z = z / np.linalg.norm(z)
    y = np.asarray(y_hint, float)
    y = y - z * (y @ z)
    y = y / np.linalg.norm(y)
    x = np.cross(y, z)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, np.asarray(origin, float)
    return T


def tilt_axes(tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(superior, anterior) unit vectors of a body tilted ``tilt_deg`` anteriorly."""
    t = np.radians(tilt_deg)
    return np.array([0.0, np.sin(t), np.cos(t)]), np.array([0.0, np.cos(t), -np.sin(t)])


@dataclass
class Level:
    """One vertebra: dimensions and pose (LocalToPatient, origin = body centre)."""

    name: str
    dims: VertebraDims
    pose: np.ndarray
    tilt_deg: float

    @property
    def center(self) -> np.ndarray:
        return self.pose[:3, 3].copy()

    @property
    def up(self) -> np.ndarray:
        return self.pose[:3, 2].copy()

    @property
    def ant(self) -> np.ndarray:
        return self.pose[:3, 1].copy()

    @property
    def right(self) -> np.ndarray:
        return self.pose[:3, 0].copy()

    def P(self, x: float, y: float, z: float) -> np.ndarray:
        """Patient RAS of the local point (x right, y anterior, z superior) mm."""
        return self.pose[:3, :3] @ np.array([x, y, z], float) + self.pose[:3, 3]

    def V(self, x: float, y: float, z: float) -> np.ndarray:
        """Patient direction of a local vector."""
        return self.pose[:3, :3] @ np.array([x, y, z], float)

    def sub(self, origin_local, z_local, y_local) -> np.ndarray:
        """LocalToPatient of a sub-frame given in this vertebra's local coordinates."""
        return frame(self.P(*origin_local), self.V(*z_local), self.V(*y_local))

    # canal geometry in local coordinates
    @property
    def canal_y(self) -> float:
        d = self.dims
        return -d.body_depth / 2 - d.canal_depth / 2 + 1.5


@dataclass
class SpineLayout:
    levels: dict[str, Level]
    disc_centers: dict[str, np.ndarray]  # "L4-L5" -> RAS
    disc_heights: dict[str, float]
    disc_up: dict[str, np.ndarray]
    s1_endplate: np.ndarray  # centre of the S1 upper end plate
    s1_up: np.ndarray
    s1_tilt_deg: float


def layout(dims: dict[str, VertebraDims], rng: np.random.Generator, degeneration: dict,
           lordosis_sd: float = 0.12) -> SpineLayout:
    """Stack the bodies and discs from the L4–L5 disc centre (origin) up and down."""
    f = float(np.clip(1.0 + rng.normal(0, lordosis_sd), 0.75, 1.25))
    names = list(LEVELS) + ["S1"]
    ref = TILT_DEG["L3"]
    tilt = {n: ref + (TILT_DEG[n] - ref) * f + float(rng.normal(0, 1.0)) for n in names}
    # degenerative disc height loss weighs on the lower discs
    weight = {"T11": 0.2, "T12": 0.2, "L1": 0.3, "L2": 0.5, "L3": 0.7, "L4": 1.0, "L5": 1.0}
    hdisc = {}
    for i, n in enumerate(LEVELS):
        below = names[i + 1]
        loss = degeneration["disc_loss"] * weight[n]
        hdisc[f"{n}-{below}"] = dims[n].disc_below * (1.0 - loss)

    def axes(n):
        return tilt_axes(tilt[n])

    def disc_axes(a, b):
        return tilt_axes(0.5 * (tilt[a] + tilt[b]))

    levels: dict[str, Level] = {}
    centers: dict[str, np.ndarray] = {}
    dup: dict[str, np.ndarray] = {}
    c = np.zeros(3)
    centers["L4-L5"] = c.copy()
    dup["L4-L5"] = disc_axes("L4", "L5")[0]
    # upwards from L4-L5
    order_up = ["L4", "L3", "L2", "L1", "T12", "T11"]
    below = "L5"
    disc = c.copy()
    for n in order_up:
        key = f"{n}-{below}"
        ud = disc_axes(n, below)[0]
        u, a = axes(n)
        centre = disc + ud * hdisc[key] / 2 + u * dims[n].body_height / 2
        levels[n] = Level(n, dims[n], frame(centre, u, a), tilt[n])
        nxt = names[names.index(n) - 1] if n != "T11" else None
        if nxt is not None:
            k2 = f"{nxt}-{n}"
            ud2 = disc_axes(nxt, n)[0]
            disc = centre + u * dims[n].body_height / 2 + ud2 * hdisc[k2] / 2
            centers[k2] = disc.copy()
            dup[k2] = ud2
        below = n
    # downwards: L5 and the S1 end plate
    u5, a5 = axes("L5")
    ud = disc_axes("L4", "L5")[0]
    centre5 = c - ud * hdisc["L4-L5"] / 2 - u5 * dims["L5"].body_height / 2
    levels["L5"] = Level("L5", dims["L5"], frame(centre5, u5, a5), tilt["L5"])
    uds = disc_axes("L5", "S1")[0]
    dsc = centre5 - u5 * dims["L5"].body_height / 2 - uds * hdisc["L5-S1"] / 2
    centers["L5-S1"] = dsc
    dup["L5-S1"] = uds
    us, _ = axes("S1")
    s1 = dsc - uds * hdisc["L5-S1"] / 2
    ordered = {n: levels[n] for n in LEVELS}
    return SpineLayout(ordered, centers, hdisc, dup, s1, us, tilt["S1"])
