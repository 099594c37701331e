"""The needle: gauge, length, tip, direction and inserted length (immutable)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from needleguide import geometry
from needleguide.errors import UserError, check_range

# Nominal outer diameters (mm) of spinal / hypodermic needles (ISO 9626 regular wall).
GAUGE_OD_MM: dict[int, float] = {
    18: 1.270, 19: 1.067, 20: 0.908, 21: 0.819, 22: 0.718,
    23: 0.642, 24: 0.566, 25: 0.515, 26: 0.464, 27: 0.413,
}
# Nominal inner diameters (mm), regular wall.
GAUGE_ID_MM: dict[int, float] = {
    18: 0.838, 19: 0.686, 20: 0.603, 21: 0.514, 22: 0.413,
    23: 0.337, 24: 0.311, 25: 0.260, 26: 0.260, 27: 0.210,
}

# Assumption (issue 16): the largest stick displacement of the soft tissue along the shaft
# before the needle slips through it (mm); soft-tissue insertion studies report 1–5 mm of
# axial tissue displacement near the shaft (less in the fat and muscle of the back than in
# liver or prostate). The field it drives is in ``us/tissue_motion.py``.
TISSUE_DRAG_MAX_MM = 1.0


def next_tissue_drag_mm(drag_mm: float, advance_mm: float,
                        limit_mm: float = TISSUE_DRAG_MAX_MM) -> float:
    """Stick–slip: the tissue follows the needle by ``advance_mm`` (negative: withdrawal)
    until it lags ``limit_mm`` behind, then the needle slips through it."""
    return float(np.clip(drag_mm + advance_mm, -limit_mm, limit_mm))


@dataclass(frozen=True)
class Needle:
    """A straight needle.

    gauge: 18–27 G; length_mm: shaft length (hub to tip), 25–200 mm; tip_mm: tip position
    in patient RAS mm; direction: unit vector from hub to tip (RAS); inserted_length_mm:
    length of shaft below the skin (0..length_mm); bevel_deg: bevel angle (typ. 12–30°);
    hub_length_mm: length of the (plastic/metal) hub behind the shaft; echogenic: an
    echo-enhanced needle (dimpled / coated shaft) whose ultrasound echo keeps a diffuse,
    nearly angle-independent part (``us/needle_echo.py``); tissue_drag_mm: how far the
    tissue around the shaft has been dragged along the axis by the last moves (signed mm,
    stick–slip within ±``TISSUE_DRAG_MAX_MM``; ``advanced`` and ``moved_from`` update it).
    """

    gauge: int = 22
    length_mm: float = 89.0
    tip_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, float, float] = (0.0, 1.0, 0.0)
    inserted_length_mm: float = 0.0
    bevel_deg: float = 20.0
    hub_length_mm: float = 20.0
    echogenic: bool = False
    tissue_drag_mm: float = 0.0

    def __post_init__(self) -> None:
        if int(self.gauge) not in GAUGE_OD_MM:
            raise UserError(f"needle gauge: {self.gauge} is outside the allowed range 18–27 G")
        check_range("needle length_mm", self.length_mm, 25.0, 200.0, " mm")
        check_range("needle inserted_length_mm", self.inserted_length_mm, 0.0,
                    self.length_mm, " mm")
        check_range("needle tissue_drag_mm", self.tissue_drag_mm, -TISSUE_DRAG_MAX_MM,
                    TISSUE_DRAG_MAX_MM, " mm")
        d = np.asarray(self.direction, dtype=float)
        n = float(np.linalg.norm(d))
        if not np.isfinite(n) or n < 1e-9:
            raise UserError("needle direction: must be a non-zero 3-vector")
        object.__setattr__(self, "direction", tuple((d / n).tolist()))
        object.__setattr__(self, "tip_mm", tuple(np.asarray(self.tip_mm, dtype=float).tolist()))

    @property
    def outer_diameter_mm(self) -> float:
        return GAUGE_OD_MM[int(self.gauge)]

    @property
    def inner_diameter_mm(self) -> float:
        return GAUGE_ID_MM[int(self.gauge)]

    @property
    def tip(self) -> np.ndarray:
        return np.asarray(self.tip_mm, dtype=float)

    @property
    def axis(self) -> np.ndarray:
        """Unit vector hub -> tip."""
        return np.asarray(self.direction, dtype=float)

    @property
    def hub_mm(self) -> np.ndarray:
        """Position of the shaft's proximal end (where the hub begins), RAS mm."""
        return self.tip - self.axis * self.length_mm

    @property
    def skin_entry_mm(self) -> np.ndarray:
        """Where the shaft crosses the skin, given ``inserted_length_mm``."""
        return self.tip - self.axis * self.inserted_length_mm

    @property
    def NeedleTipToPatient(self) -> np.ndarray:
        """Transform whose +z is the needle axis (hub -> tip) and origin the tip."""
        z = self.axis
        helper = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
        x = np.cross(helper, z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        return geometry.make_transform(np.column_stack([x, y, z]), self.tip)

    def advanced(self, distance_mm: float) -> Needle:
        """The needle pushed ``distance_mm`` further along its axis (negative: withdrawn)."""
        new_len = float(np.clip(self.inserted_length_mm + distance_mm, 0.0, self.length_mm))
        moved = new_len - self.inserted_length_mm
        return dataclasses.replace(
            self, tip_mm=tuple(self.tip + self.axis * moved), inserted_length_mm=new_len,
            tissue_drag_mm=next_tissue_drag_mm(self.tissue_drag_mm, moved)
        )

    def moved_from(self, previous: Needle | None, redirect_deg: float = 3.0) -> Needle:
        """This needle with the tissue drag carried over from ``previous`` (the same
        needle one move earlier): the change of inserted length drags the tissue on;
        a needle new in the body, or turned by more than ``redirect_deg``, starts from
        rest."""
        if previous is None or previous.inserted_length_mm <= 0.0:
            return dataclasses.replace(self, tissue_drag_mm=0.0)
        cos = float(np.clip(self.axis @ previous.axis, -1.0, 1.0))
        if np.degrees(np.arccos(cos)) > redirect_deg:
            return dataclasses.replace(self, tissue_drag_mm=0.0)
        moved = self.inserted_length_mm - previous.inserted_length_mm
        return dataclasses.replace(
            self, tissue_drag_mm=next_tissue_drag_mm(previous.tissue_drag_mm, moved))

    @staticmethod
    def from_entry_and_target(entry_mm, target_mm, gauge: int = 22, length_mm: float = 89.0,
                              inserted_mm: float | None = None) -> Needle:
        """A needle entering the skin at ``entry_mm`` aimed at ``target_mm``, with its tip
        ``inserted_mm`` along the path (default: at the target)."""
        e = np.asarray(entry_mm, dtype=float)
        t = np.asarray(target_mm, dtype=float)
        d = t - e
        dist = float(np.linalg.norm(d))
        if dist < 1e-6:
            raise UserError("needle: entry and target coincide")
        ins = dist if inserted_mm is None else float(inserted_mm)
        if ins > length_mm:
            raise UserError(
                f"needle length_mm: {length_mm} mm is shorter than the path ({ins:.1f} mm)"
            )
        return Needle(gauge=gauge, length_mm=length_mm, tip_mm=tuple(e + d / dist * ins),
                      direction=tuple(d / dist), inserted_length_mm=ins)
