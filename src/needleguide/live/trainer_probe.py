"""The trainer's ultrasound probe: relative moves in the probe's own frame from the
planned pose (``session.operator.USOperator``), the probe kept seated on the skin, and
the scanner's depth, gain and frequency.

Pose (relative to the planned pose P0: x along the array, y the beam, z elevation):
``slide_mm`` and ``elev_mm`` — the face centre moved along P0's x and z (a slide along
the current, rotated array is split into both); ``rotate_deg`` — about P0's beam axis;
``tilt_deg`` — the beam fanned about the (rotated) array axis. The face is then seated on
the skin: along the new beam, 1 mm into the first body voxel (as ``us.views.place_probe``
presses it). ``probe_reset`` returns to P0 exactly.
"""

from __future__ import annotations

import numpy as np

from needleguide import geometry

POSE_LIMIT_MM = 100.0  # slide / elevation from the planned position
TILT_LIMIT_DEG = 45.0
SEAT_SEARCH_MM = 60.0  # the skin is looked for this far either side of the face
PRESS_MM = 1.0  # the face pressed into the skin (us.views.place_probe)
DEPTH_MIN_MM = 20.0
GAIN_RANGE_DB = (-20.0, 30.0)


def moved_pose(pose, slide_mm: float = 0.0, elev_mm: float = 0.0, tilt_deg: float = 0.0,
               rotate_deg: float = 0.0) -> tuple[float, float, float, float]:
    """The pose (slide_mm, elev_mm, tilt_deg, rotate_deg) after a relative move in the
    probe's own frame: the slide along the current array and the elevational sweep are
    turned by the current rotation into the planned frame; then the probe tilts and
    rotates (rotation wrapped to [-180, 180))."""
    s, e, t, r = (float(v) for v in pose)
    a = np.radians(r)
    s += slide_mm * np.cos(a) + elev_mm * np.sin(a)
    e += -slide_mm * np.sin(a) + elev_mm * np.cos(a)
    r = (r + rotate_deg + 180.0) % 360.0 - 180.0
    return float(s), float(e), float(t + tilt_deg), float(r)


def compose(P0: np.ndarray, pose) -> np.ndarray:
    """``ProbeToPatient`` of ``pose`` relative to ``P0`` before seating."""
    s, e, t, r = pose
    x0, y0, z0, o0 = (np.asarray(P0[:3, k], float) for k in range(4))
    R = geometry.rotation_about_axis(y0, np.radians(r))
    x1 = R @ x0
    y1 = geometry.rotation_about_axis(x1, np.radians(t)) @ y0
    return geometry.frame_from_axes(o0 + s * x0 + e * z0, x1, y1)


def seat(patient, P: np.ndarray) -> np.ndarray:
    """``P`` moved along its beam so that the face is pressed ``PRESS_MM`` into the skin;
    unchanged where the beam line meets no body."""
    o, y = P[:3, 3], P[:3, 1] / np.linalg.norm(P[:3, 1])
    s = np.arange(-SEAT_SEARCH_MM, SEAT_SEARCH_MM, 0.5)
    inside = patient.label_at(o[None] + s[:, None] * y[None]) != 0
    out = P.copy()
    if inside[0]:  # the face is deep in the body: walk back out along the beam
        skin, _, _ = patient.walk_to_skin(o, -y, max_mm=200.0)
        if skin is None:
            return out
        out[:3, 3] = skin + y * (0.5 + PRESS_MM)
        return out
    k = np.flatnonzero(inside)
    if k.size:
        out[:3, 3] = o + y * (s[k[0]] + PRESS_MM)
    return out


def footprint_half_mm(settings) -> float:
    """Half the probe's footprint along the array (mm; as ``USOperator`` measures it)."""
    spec = settings.spec
    return spec.width_mm / 2 if spec.kind == "linear" else \
        spec.radius_mm * np.sin(spec.sector_rad / 2)


class ProbeControl:
    """The probe of a trainer session (``view``: its ``live.views.USView``)."""

    def __init__(self, view, patient):
        self.view, self.patient = view, patient
        self.planned = np.asarray(view.probe_to_patient, float).copy()
        self.pose = (0.0, 0.0, 0.0, 0.0)
        spec = view.settings.spec
        self.ranges = {"depth_mm": (DEPTH_MIN_MM, float(spec.max_depth_mm)),
                       "gain_db": GAIN_RANGE_DB,
                       "frequency_mhz": (float(spec.fmin_mhz), float(spec.fmax_mhz))}

    def move(self, **step: float) -> None:
        self.set_pose(moved_pose(self.pose, **step))

    def set_pose(self, pose) -> None:
        self.pose = tuple(float(v) for v in pose)
        self.view.set_probe(seat(self.patient, compose(self.planned, self.pose)))

    def reset(self) -> None:
        self.pose = (0.0, 0.0, 0.0, 0.0)
        self.view.set_probe(self.planned.copy())

    def set_scanner(self, depth_mm: float | None = None, gain_db: float | None = None,
                    frequency_mhz: float | None = None) -> None:
        """New depth / gain / frequency (validated ranges); the focus stays where it was,
        within the new depth."""
        from needleguide.us import make_settings

        s = self.view.settings.model_dump()
        if depth_mm is not None:
            s["depth_mm"] = float(depth_mm)
        if gain_db is not None:
            s["gain_db"] = float(gain_db)
        if frequency_mhz is not None:
            s["frequency_mhz"] = float(frequency_mhz)
        if s.get("focus_mm") is not None:
            s["focus_mm"] = float(np.clip(s["focus_mm"], 2.0, 0.95 * s["depth_mm"]))
        self.view.set_settings(make_settings(**s))

    def entry_at(self, point_mm) -> np.ndarray | None:
        """The skin point of the image plane nearest to ``point_mm`` (a clicked pixel)
        outside the probe's footprint (in-plane: the needle enters beyond an end of the
        probe); None when the plane holds no skin there."""
        P = np.asarray(self.view.probe_to_patient, float)
        half = footprint_half_mm(self.view.settings)
        xs = np.arange(-(half + 80.0), half + 80.0, 0.5)
        xs = xs[np.abs(xs) > half + 1.0]
        ys = np.arange(-SEAT_SEARCH_MM, 80.0, 0.5)
        X, Y = np.meshgrid(xs, ys, indexing="ij")
        pts = geometry.apply(P, np.stack([X, Y, np.zeros_like(X)], -1))
        inside = self.patient.label_at(pts) != 0
        first = np.argmax(inside, axis=1)
        ok = inside[np.arange(len(xs)), first] & ~inside[:, 0]
        if not ok.any():
            return None
        skin = pts[np.arange(len(xs)), first][ok]
        d = np.linalg.norm(skin - np.asarray(point_mm, float)[None], axis=1)
        return skin[int(np.argmin(d))]

    def state(self) -> dict:
        st = self.view.settings
        s, e, t, r = self.pose
        return {"probe": str(st.probe), "depth_mm": round(float(st.depth_mm), 1),
                "gain_db": round(float(st.gain_db), 1),
                "frequency_mhz": round(float(st.f_mhz), 2),
                "depth_range_mm": list(self.ranges["depth_mm"]),
                "frequency_range_mhz": list(self.ranges["frequency_mhz"]),
                "pose": {"slide_mm": round(s, 1) + 0.0, "elev_mm": round(e, 1) + 0.0,
                         "tilt_deg": round(t, 1) + 0.0, "rotate_deg": round(r, 1) + 0.0}}


__all__ = ["ProbeControl", "compose", "moved_pose", "seat"]
