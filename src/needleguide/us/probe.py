"""Ultrasound probes and acquisition settings.

Probe frame (``ProbeToPatient``): origin at the centre of the transducer face, +y along the
central beam (into the patient), +x along the array (towards the side that appears on the
*right* of the image; the orientation marker is on the image left, i.e. towards -x),
+z = x × y (elevation). Image frame (``ImageToProbe``): the Frame convention, x along
columns, y down the rows, origin at the centre of pixel (0, 0); it is a pure translation of
the probe frame, so an image pixel (c, r) sits at probe (x0 + c·dx, r·dy, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from needleguide.errors import UserError

ProbeKind = Literal["linear", "curvilinear"]


@dataclass(frozen=True)
class ProbeSpec:
    """Geometry and band of a probe.

    width_mm: array length (linear) or arc length (curvilinear); radius_mm: curvature
    radius (curvilinear, 0 for linear); freq range in MHz; elevation_mm: elevation aperture
    (lens height); elevation_focus_mm: fixed lens focus; n_lines: scan lines per frame.
    """

    kind: ProbeKind
    width_mm: float
    radius_mm: float
    fmin_mhz: float
    fmax_mhz: float
    f_default_mhz: float
    elevation_mm: float
    elevation_focus_mm: float
    n_lines: int
    max_depth_mm: float

    @property
    def sector_rad(self) -> float:
        """Total angle of the curvilinear sector (0 for linear)."""
        return 0.0 if self.kind == "linear" else self.width_mm / self.radius_mm


PROBES: dict[str, ProbeSpec] = {
    # 38 mm linear array, 5–12 MHz (e.g. L12-5 / L38)
    "linear": ProbeSpec("linear", 38.0, 0.0, 5.0, 12.0, 10.0, 4.0, 18.0, 192, 80.0),
    # 60 mm radius convex array, 2–5 MHz (C5-2 / C60); 63 mm arc -> 60° sector
    "curvilinear": ProbeSpec("curvilinear", 63.0, 60.0, 2.0, 5.0, 3.5, 12.0, 65.0, 192, 200.0),
}


# receiver noise re mean muscle speckle at the face: system dynamic range ≈ 70 dB (assumption:
# 3.5 MHz reaches ≈ 20 cm of α≈0.5 dB/cm/MHz tissue, 2·0.5·3.5·20 = 70 dB; docs/us.md)
NOISE_DB_RE_FACE = -70.0


class USSettings(BaseModel):
    """Validated acquisition settings.

    probe: 'linear' | 'curvilinear'; frequency_mhz within the probe's band; depth_mm
    (imaged depth below the face); gain_db (overall receive gain); tgc_db: TGC curve, dB
    added at equally spaced depths from 0 to depth_mm (linear interpolation; ``None`` =
    automatic compensation of ``tgc_auto_db_cm_mhz`` × f round trip, ``[]`` = TGC off);
    focus_mm: transmit focal depth (default depth/2); dynamic_range_db: log-compression
    window; steer_deg: beam steering (linear only, ±25°); doppler: colour Doppler box
    ``[x0_mm, x1_mm, z0_mm, z1_mm]`` in image-lateral (from the image centre) and depth, or
    None; prf_hz: Doppler pulse repetition frequency; output_px: image rows = cols;
    noise_db_re_face: electronic (thermal) receiver noise, dB re the mean muscle-speckle echo
    at the face before attenuation (the system dynamic range; default −70 dB, an assumption,
    see docs/us.md): TGC and gain amplify it together with the echoes; speckle_subcell:
    the image follows a sub-cell (tremor-sized) probe move: scatterers blended between
    their lattice cells, muscle septa ramped between fibre columns, boundaries between
    label voxels at the 0.5 level of the interpolated labels (``us/label_field.py``) and
    each interface's echo at its bisected crossing between two samples (≈ 1.7× the
    medium-sampling time; docs/us.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    probe: ProbeKind = "linear"
    frequency_mhz: float | None = None
    depth_mm: float = Field(40.0, ge=10.0, le=200.0)
    gain_db: float = Field(0.0, ge=-40.0, le=40.0)
    tgc_db: tuple[float, ...] | None = None
    tgc_auto_db_cm_mhz: float = Field(0.8, ge=0.0, le=2.0)
    focus_mm: float | None = None
    dynamic_range_db: float = Field(60.0, ge=20.0, le=100.0)
    steer_deg: float = Field(0.0, ge=-25.0, le=25.0)
    doppler: tuple[float, ...] | None = None
    prf_hz: float = Field(4000.0, ge=250.0, le=20000.0)
    output_px: int = Field(512, ge=64, le=2048)
    n_cycles: float = Field(3.0, ge=1.0, le=6.0)
    noise_db_re_face: float = Field(NOISE_DB_RE_FACE, ge=-120.0, le=-20.0)
    speckle_subcell: bool = False

    @model_validator(mode="after")
    def _check(self) -> USSettings:
        spec = PROBES[self.probe]
        f = self.frequency_mhz
        if f is not None and not (spec.fmin_mhz <= f <= spec.fmax_mhz):
            raise ValueError(f"frequency_mhz: {f} MHz is outside the {self.probe} probe's band "
                             f"[{spec.fmin_mhz}, {spec.fmax_mhz}] MHz")
        if self.depth_mm > spec.max_depth_mm:
            raise ValueError(f"depth_mm: {self.depth_mm} mm exceeds the {self.probe} probe's "
                             f"maximum {spec.max_depth_mm} mm")
        if self.focus_mm is not None and not (2.0 <= self.focus_mm <= self.depth_mm):
            raise ValueError(f"focus_mm: {self.focus_mm} mm is outside [2, depth_mm="
                             f"{self.depth_mm}] mm")
        if self.steer_deg != 0.0 and self.probe != "linear":
            raise ValueError("steer_deg: beam steering is available on the linear probe only")
        if self.tgc_db is not None and any(not (-20.0 <= v <= 80.0) for v in self.tgc_db):
            raise ValueError("tgc_db: every TGC value must be in [-20, 80] dB")
        if self.doppler is not None:
            if len(self.doppler) != 4 or self.doppler[0] >= self.doppler[1] \
                    or self.doppler[2] >= self.doppler[3]:
                raise ValueError("doppler: expected [x0_mm, x1_mm, z0_mm, z1_mm] with x0<x1, "
                                 "z0<z1")
        return self

    @property
    def spec(self) -> ProbeSpec:
        return PROBES[self.probe]

    @property
    def f_mhz(self) -> float:
        return self.spec.f_default_mhz if self.frequency_mhz is None else self.frequency_mhz

    @property
    def focus(self) -> float:
        return self.depth_mm / 2.0 if self.focus_mm is None else self.focus_mm


def make_settings(**kw) -> USSettings:
    """USSettings from keyword arguments (None values dropped); one clear UserError if bad."""
    kw = {k: v for k, v in kw.items() if v is not None}
    try:
        return USSettings(**kw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "settings"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if field == "settings" or msg.startswith(tuple(USSettings.model_fields)):
            raise UserError(msg) from None
        raise UserError(f"{field}: {err.get('input')!r}: {msg}") from None


@dataclass(frozen=True)
class BeamGeometry:
    """Scan lines in the probe frame (x lateral, y axial; mm).

    origins (L, 2) and directions (L, 2) of the L scan lines; r_mm (N,) range samples along
    each line (distance from the line origin); depth of sample = origin_y + r·dir_y.
    """

    origins: np.ndarray
    directions: np.ndarray
    r_mm: np.ndarray
    kind: ProbeKind
    radius_mm: float
    steer_rad: float

    @property
    def n_lines(self) -> int:
        return self.origins.shape[0]

    @property
    def dr_mm(self) -> float:
        return float(self.r_mm[1] - self.r_mm[0])

    def line_spacing_mm(self) -> np.ndarray:
        """Distance between neighbouring lines at each range sample (N,)."""
        if self.kind == "linear":
            dx = float(np.linalg.norm(self.origins[1] - self.origins[0]))
            return np.full(self.r_mm.shape, dx * np.cos(self.steer_rad))
        dth = float(np.arctan2(self.directions[1, 0], self.directions[1, 1])
                    - np.arctan2(self.directions[0, 0], self.directions[0, 1]))
        return np.abs(dth) * (self.radius_mm + self.r_mm)

    def points_probe(self) -> np.ndarray:
        """(L, N, 2) probe-frame (x, y) of every beam sample."""
        return self.origins[:, None, :] + self.r_mm[None, :, None] * self.directions[:, None, :]


def beam_geometry(s: USSettings, samples_per_mm: float | None = None) -> BeamGeometry:
    """Scan-line geometry for the settings: lines across the aperture, range samples spaced
    about a third of the axial resolution (n·λ/2)."""
    spec = s.spec
    lam = 1.540 / s.f_mhz  # mm, at 1540 m/s
    dz = min(0.5, max(0.03, s.n_cycles * lam / 2 / 3.0))
    if samples_per_mm is not None:
        dz = 1.0 / samples_per_mm
    L = spec.n_lines
    if spec.kind == "linear":
        st = np.deg2rad(s.steer_deg)
        x = np.linspace(-spec.width_mm / 2, spec.width_mm / 2, L)
        origins = np.stack([x, np.zeros(L)], axis=1)
        d = np.array([np.sin(st), np.cos(st)])
        directions = np.repeat(d[None], L, axis=0)
        n = int(np.ceil(s.depth_mm / np.cos(st) / dz)) + 1
        return BeamGeometry(origins, directions, np.arange(n) * dz, "linear", 0.0, st)
    R = spec.radius_mm
    th = np.linspace(-spec.sector_rad / 2, spec.sector_rad / 2, L)
    directions = np.stack([np.sin(th), np.cos(th)], axis=1)
    # apex at (0, -R): the face (r = 0) is the arc of radius R; the centre line touches y=0
    origins = np.stack([R * np.sin(th), R * np.cos(th) - R], axis=1)
    n = int(np.ceil(s.depth_mm / dz)) + 1
    return BeamGeometry(origins, directions, np.arange(n) * dz, "curvilinear", R, 0.0)


def image_extent_mm(s: USSettings) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) of the displayed image in the probe frame (mm)."""
    spec = s.spec
    if spec.kind == "linear":
        w = spec.width_mm / 2
        sh = abs(np.tan(np.deg2rad(s.steer_deg))) * s.depth_mm
        lo = -w - (sh if s.steer_deg < 0 else 0.0)
        hi = w + (sh if s.steer_deg > 0 else 0.0)
        return lo, hi, 0.0, s.depth_mm
    R = spec.radius_mm
    half = spec.sector_rad / 2
    xr = (R + s.depth_mm) * np.sin(half)
    return -xr, xr, R * np.cos(half) - R, s.depth_mm


def image_grid(s: USSettings) -> tuple[int, int, float, float, float]:
    """Output image (rows, cols, spacing_mm, x0_mm, y0_mm): a square of ``output_px``² square
    pixels covering the larger of the lateral and depth spans (the rest is black)."""
    x0, x1, y0, y1 = image_extent_mm(s)
    n = s.output_px
    sp = max(x1 - x0, y1 - y0) / (n - 1)
    xc = 0.5 * (x0 + x1)
    return n, n, sp, xc - (n - 1) / 2 * sp, y0


def image_to_probe(x0_mm: float, y0_mm: float) -> np.ndarray:
    """``ImageToProbe``: image mm (x right along columns, y down rows) -> probe mm."""
    t = np.eye(4)
    t[0, 3] = x0_mm
    t[1, 3] = y0_mm
    return t


def beam_direction_px(frame_settings: dict, spacing_mm: float, col: float, row: float
                      ) -> np.ndarray:
    """The unit direction (col, row; deeper) of the beam through a pixel of a rendered
    frame (its ``settings``: probe, steer_deg, ImageToProbe; square pixels of
    ``spacing_mm``): parallel beams steered by ``steer_deg`` on a linear array, rays from
    the apex (0, −radius) of the probe frame on a curvilinear one."""
    if frame_settings["probe"] == "linear":
        a = np.deg2rad(float(frame_settings.get("steer_deg", 0.0)))
        return np.array([np.sin(a), np.cos(a)])
    t = np.asarray(frame_settings["ImageToProbe"], float)
    x, y = t[0, 3] + col * spacing_mm, t[1, 3] + row * spacing_mm
    v = np.array([x, y + PROBES[frame_settings["probe"]].radius_mm])
    return v / float(np.hypot(v[0], v[1]))
