"""C-arm geometry: source, isocentre, flat detector, angles, collimation, named views.

Conventions (patient prone on the table, spinal interventions):

* ``b`` is the beam direction (source → detector). Orbit 0°, tilt 0° is the spinal "AP"
  view of a prone patient: source under the table (anterior), detector above the back,
  ``b = (0, -1, 0)`` in RAS.
* ``orbit_deg`` rotates about the patient's long axis; positive moves the detector toward
  the patient's right (right oblique: beam from left-anterior to right-posterior).
  ``tilt_deg`` rotates about the patient's right-left axis; positive moves the detector
  cranially (cranial tilt; the Ferguson view of L5–S1 is a positive tilt).
  ``b = (cos t·sin o, -cos t·cos o, sin t)``. The detector is never rolled.
* Display: image columns ``u`` and rows ``v`` with ``(u, v, b)`` right-handed, ``v`` the
  projection of the patient's inferior axis (superior is up). This is the view from the
  source: on the AP the patient's right is on the image left; on the lateral (orbit +90°,
  detector on the right) anterior is on the image left.
* ``ImageToPatient`` maps image mm (x = col·pixel, y = row·pixel, 0) to the detector plane
  in RAS, as every Frame requires.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from needleguide import geometry
from needleguide.anatomy.patient import Patient
from needleguide.errors import UserError, check_choice

VIEWS = ("ap", "lateral", "oblique-right", "oblique-left", "contralateral-oblique",
         "contralateral-oblique-right", "contralateral-oblique-left", "ferguson")


class CArmGeometry(BaseModel):
    """Fixed geometry of the C-arm (validated at the API / CLI boundary).

    sid_mm: source-to-image (detector) distance; sod_mm: source-to-isocentre distance
    (*assumption* 650 mm, typical mobile C-arm); detector_mm: square flat-panel side;
    pixels: detector matrix (square); collimation_mm: (width, height) of the collimated
    field at the detector plane; focal_spot_mm: nominal focal spot size (blur);
    detector_blur_mm: Gaussian σ of the scintillator light spread (*assumption*).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sid_mm: float = Field(1000.0, ge=700.0, le=1300.0)
    sod_mm: float = Field(650.0, ge=300.0, le=1000.0)
    detector_mm: float = Field(300.0, ge=100.0, le=450.0)
    pixels: int = Field(512, ge=64, le=1024)
    collimation_mm: tuple[float, float] = (300.0, 300.0)
    focal_spot_mm: float = Field(0.6, ge=0.1, le=2.0)
    detector_blur_mm: float = Field(0.25, ge=0.0, le=2.0)

    @model_validator(mode="after")
    def _check(self) -> CArmGeometry:
        if self.sod_mm >= self.sid_mm - 150.0:
            raise ValueError("sod_mm must be at least 150 mm shorter than sid_mm")
        w, h = self.collimation_mm
        if not (10.0 <= w <= self.detector_mm and 10.0 <= h <= self.detector_mm):
            raise ValueError(f"collimation_mm must lie in [10, {self.detector_mm}] mm")
        return self

    @property
    def pixel_mm(self) -> float:
        return self.detector_mm / self.pixels

    @property
    def reference_point_mm(self) -> float:
        """Source to the interventional reference point: 150 mm before the isocentre."""
        return self.sod_mm - 150.0


@dataclass(frozen=True)
class CArm:
    """A C-arm pose: geometry + isocentre (RAS mm) + orbit and tilt angles (degrees)."""

    geometry: CArmGeometry = dataclasses.field(default_factory=CArmGeometry)
    isocenter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orbit_deg: float = 0.0
    tilt_deg: float = 0.0
    view: str = "custom"

    def __post_init__(self) -> None:
        if not (-120.0 <= self.orbit_deg <= 120.0):
            raise UserError(f"orbit_deg: {self.orbit_deg} is outside the allowed range "
                            "[-120, 120] degrees")
        if not (-50.0 <= self.tilt_deg <= 50.0):
            raise UserError(f"tilt_deg: {self.tilt_deg} is outside the allowed range "
                            "[-50, 50] degrees")
        object.__setattr__(self, "isocenter_mm",
                           tuple(np.asarray(self.isocenter_mm, float).tolist()))

    # ---- frame ------------------------------------------------------------------------
    @property
    def beam(self) -> np.ndarray:
        """Unit beam direction b (source → detector), RAS."""
        o, t = np.radians(self.orbit_deg), np.radians(self.tilt_deg)
        return np.array([np.cos(t) * np.sin(o), -np.cos(t) * np.cos(o), np.sin(t)])

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, b): image column axis, image row axis, beam; right-handed, RAS."""
        b = self.beam
        inferior = np.array([0.0, 0.0, -1.0])
        v = inferior - b * (inferior @ b)
        if np.linalg.norm(v) < 1e-6:  # beam along the body axis: fall back to posterior
            v = np.array([0.0, -1.0, 0.0]) - b * (-b[1])
        v /= np.linalg.norm(v)
        u = np.cross(v, b)
        return u, v, b

    @property
    def source_mm(self) -> np.ndarray:
        return np.asarray(self.isocenter_mm) - self.geometry.sod_mm * self.beam

    @property
    def detector_center_mm(self) -> np.ndarray:
        return self.source_mm + self.geometry.sid_mm * self.beam

    @property
    def ImageToPatient(self) -> np.ndarray:
        """Image mm (x along columns, y down rows, z = 0 on the detector) → RAS mm."""
        u, v, b = self.axes
        g = self.geometry
        half = (g.pixels - 1) / 2.0 * g.pixel_mm
        origin = self.detector_center_mm - half * (u + v)
        return geometry.make_transform(np.column_stack([u, v, b]), origin)

    @property
    def DetectorToPatient(self) -> np.ndarray:
        """Detector frame (origin at the detector centre, axes u, v, b) → RAS mm."""
        u, v, b = self.axes
        return geometry.make_transform(np.column_stack([u, v, b]), self.detector_center_mm)

    @property
    def SourceToPatient(self) -> np.ndarray:
        u, v, b = self.axes
        return geometry.make_transform(np.column_stack([u, v, b]), self.source_mm)

    # ---- projection ---------------------------------------------------------------------
    def magnification(self, points_mm) -> np.ndarray:
        """Geometric magnification SID / (distance from source along the beam)."""
        p = np.asarray(points_mm, float)
        return self.geometry.sid_mm / ((p - self.source_mm) @ self.beam)

    def project(self, points_mm) -> np.ndarray:
        """Pinhole projection of RAS points (..., 3) → pixel (col, row) (..., 2)."""
        p = np.asarray(points_mm, float)
        u, v, b = self.axes
        s = self.source_mm
        d = p - s
        depth = d @ b
        on_det = s + d * (self.geometry.sid_mm / depth)[..., None]
        rel = on_det - self.detector_center_mm
        g = self.geometry
        c = (rel @ u) / g.pixel_mm + (g.pixels - 1) / 2.0
        r = (rel @ v) / g.pixel_mm + (g.pixels - 1) / 2.0
        return np.stack([c, r], axis=-1)

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Source (3,), detector position of pixel (0, 0) (3,), and per-pixel steps along
        columns and rows stacked (2, 3): pixel (c, r) lies at p00 + c·du + r·dv."""
        u, v, _ = self.axes
        g = self.geometry
        p00 = geometry.apply(self.ImageToPatient, np.zeros(3))
        return self.source_mm, p00, np.stack([u * g.pixel_mm, v * g.pixel_mm])

    def collimator_mask(self) -> np.ndarray:
        """Boolean (rows, cols): pixels inside the collimated field."""
        g = self.geometry
        n = g.pixels
        x = (np.arange(n) - (n - 1) / 2.0) * g.pixel_mm
        w, h = g.collimation_mm
        return (np.abs(x)[:, None] <= h / 2.0) & (np.abs(x)[None, :] <= w / 2.0)

    def field_area_cm2_at(self, distance_mm: float) -> float:
        """Collimated field area (cm²) at ``distance_mm`` from the focal spot."""
        w, h = self.geometry.collimation_mm
        s = distance_mm / self.geometry.sid_mm
        return float(w * h * s * s / 100.0)

    def settings(self) -> dict:
        """JSON-able geometry and pose for Frame.settings."""
        return {
            "view": self.view, "orbit_deg": round(self.orbit_deg, 3),
            "tilt_deg": round(self.tilt_deg, 3), "projection": describe_angles(
                self.orbit_deg, self.tilt_deg),
            "isocenter_mm": [round(x, 3) for x in self.isocenter_mm],
            "source_mm": np.round(self.source_mm, 3).tolist(),
            **self.geometry.model_dump(),
            "pixel_mm": self.geometry.pixel_mm,
        }

    def with_pose(self, **kw) -> CArm:
        return dataclasses.replace(self, **kw)


def describe_angles(orbit_deg: float, tilt_deg: float) -> str:
    """Words for a pose (prone patient), e.g. 'PA (spinal AP)', 'right oblique 30°,
    cranial 5°', 'lateral (beam from the patient's left), 89.6°'. Within 5° of 90° the
    view is a lateral, not an oblique."""
    a = abs(orbit_deg)
    if a < 0.05:
        parts = ["PA (spinal AP)"]
    elif abs(a - 90.0) <= 5.0:
        src = "left" if orbit_deg > 0 else "right"  # the beam travels toward the other side
        parts = [f"lateral (beam from the patient's {src})"
                 + ("" if abs(a - 90.0) < 0.05 else f", {a:.1f}°")]
    else:
        parts = [f"{'right' if orbit_deg > 0 else 'left'} oblique {a:.1f}°"]
    if abs(tilt_deg) >= 0.05:
        parts.append(f"{'cranial' if tilt_deg > 0 else 'caudal'} {abs(tilt_deg):.1f}°")
    return ", ".join(parts)


def angles_from_beam(b) -> tuple[float, float]:
    """(orbit_deg, tilt_deg) of the unrolled C-arm whose beam direction is ``b``."""
    b = np.asarray(b, float) / np.linalg.norm(b)
    tilt = np.degrees(np.arcsin(np.clip(b[2], -1, 1)))
    orbit = np.degrees(np.arctan2(b[0], -b[1]))
    return float(orbit), float(tilt)


def level_frame(patient: Patient, level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, superior, anterior) of a vertebra ('L4') or a disc level ('L4-L5': the mean
    of both vertebrae's axes, centred between them)."""
    names = level.split("-")
    missing = [n for n in names if n not in patient.vertebrae]
    if missing or not (1 <= len(names) <= 2):
        raise UserError(f"level: unknown level {level!r}; vertebrae available: "
                        f"{', '.join(patient.vertebrae) or 'none'}")
    vs = [patient.vertebrae[n] for n in names]
    c = np.mean([np.asarray(v.center_mm, float) for v in vs], axis=0)
    s = np.sum([np.asarray(v.superior, float) for v in vs], axis=0)
    a = np.sum([np.asarray(v.anterior, float) for v in vs], axis=0)
    s /= np.linalg.norm(s)
    a = a - s * (a @ s)
    a /= np.linalg.norm(a)
    return c, s, a


def named_view(patient: Patient, view: str, level: str, side: str = "right",
               geometry_: CArmGeometry | None = None, oblique_deg: float = 30.0,
               contralateral_deg: float = 50.0) -> CArm:
    """The C-arm pose for a named clinical view of ``level`` (e.g. 'L4-L5').

    ap: beam along the level's end-plates (end-plates squared), through the level's centre.
    lateral: beam from the patient's left to right, perpendicular to the sagittal plane of
    the level. oblique-right/-left: AP rotated ``oblique_deg`` (25–35°) about the level's
    axis toward that side (ipsilateral oblique, "Scotty dog" of that side).
    contralateral-oblique[-side]: rotated ``contralateral_deg`` (~50°) away from the needle
    ``side``. ferguson: AP squared to the L5–S1 disc (caudal–cranial tilt).
    """
    check_choice("view", view, VIEWS)
    check_choice("side", side, ("right", "left"))
    if not (15.0 <= oblique_deg <= 45.0):
        raise UserError(f"oblique_deg: {oblique_deg} is outside the allowed range [15, 45]")
    g = geometry_ or CArmGeometry()
    if view == "ferguson":
        level = "L5-S1" if {"L5", "S1"} <= set(patient.vertebrae) else level
    c, s, a = level_frame(patient, level)
    r = np.cross(a, s)  # patient right at this level
    if view.startswith("contralateral-oblique"):
        side = view.rsplit("-", 1)[1] if view.count("-") == 2 else side
        sgn = -1.0 if side == "right" else 1.0
        th = np.radians(contralateral_deg)
        b = -a * np.cos(th) + sgn * r * np.sin(th)
    elif view.startswith("oblique"):
        sgn = 1.0 if view.endswith("right") else -1.0
        th = np.radians(oblique_deg)
        b = -a * np.cos(th) + sgn * r * np.sin(th)
    elif view == "lateral":
        b = r
    else:  # ap, ferguson
        b = -a
    orbit, tilt = angles_from_beam(b)
    return CArm(geometry=g, isocenter_mm=tuple(c), orbit_deg=orbit, tilt_deg=tilt, view=view)
