"""Validated fluoroscopy settings (exposure, detector/display, modelling assumptions)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from needleguide.errors import UserError
from needleguide.fluoro.carm import CArmGeometry

PULSE_RATES = (7.5, 15.0, 30.0)


class FluoroSettings(BaseModel):
    """Everything that sets a fluoroscope's exposure and image processing.

    Exposure: kvp (60–120), ma (tube current during a pulse, mA), pulse_width_ms,
    pulse_rate (7.5 / 15 / 30 pulses/s), added_al_mm / added_cu_mm (filtration on top of
    2.5 mm Al inherent). Defaults (70 kVp, 8 mA × 10 ms at 15 pulses/s, 3 mm Al + 0.1 mm Cu
    total, 300 mm field at SID 1000 mm) are *assumptions* chosen so that 36 s of
    fluoroscopy give ≈ 1 Gy·cm² (Kim et al. 2014); see docs/fluoro.md.
    spot_mas: tube load of one spot (saved) image (*assumption*).
    dsa_dose_factor: DSA dose rate / fluoroscopy dose rate (2.3–4.2 lumbar, Maus et al.);
    dsa_rate_fps: DSA frame rate (*assumption*).
    Physics assumptions: scatter_to_primary behind the grid, grid_primary_transmission,
    cortex_mm (cortical shell thickness of bone), csi_um (scintillator thickness).
    Display: 'white-bone' (radiographic: attenuation bright — bone, steel and contrast white)
    or 'black-bone' (the inverted fluoroscopic display: bone dark, needle and contrast
    black); edge_enhance (unsharp-mask gain); temporal_filter: weight of the newest pulse
    in the recursive (lag) filter of pulsed fluoroscopy (1 = off); range_compression: share
    of the large-scale (25 mm) log image removed before windowing; noise on/off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kvp: float = Field(70.0, ge=60.0, le=120.0)
    ma: float = Field(8.0, gt=0.0, le=50.0)
    pulse_width_ms: float = Field(10.0, ge=1.0, le=50.0)
    pulse_rate: float = 15.0
    added_al_mm: float = Field(0.5, ge=0.0, le=10.0)
    added_cu_mm: float = Field(0.1, ge=0.0, le=1.0)
    spot_mas: float = Field(1.0, gt=0.0, le=50.0)
    dsa_dose_factor: float = Field(3.2, ge=1.0, le=10.0)
    dsa_rate_fps: float = Field(2.0, ge=0.5, le=7.5)
    geometry: CArmGeometry = Field(default_factory=CArmGeometry)
    scatter_to_primary: float = Field(0.4, ge=0.0, le=5.0)
    grid_primary_transmission: float = Field(0.7, gt=0.0, le=1.0)
    cortex_mm: float = Field(1.0, ge=0.0, le=4.0)
    csi_um: float = Field(600.0, ge=100.0, le=1500.0)
    display: Literal["white-bone", "black-bone"] = "white-bone"
    edge_enhance: float = Field(0.7, ge=0.0, le=4.0)
    temporal_filter: float = Field(0.3, gt=0.0, le=1.0)
    range_compression: float = Field(0.6, ge=0.0, le=1.0)
    noise: bool = True

    @field_validator("pulse_rate")
    @classmethod
    def _rate(cls, v: float) -> float:
        if float(v) not in PULSE_RATES:
            raise ValueError("pulse_rate must be 7.5, 15 or 30 pulses/s")
        return float(v)

    @property
    def pulse_mas(self) -> float:
        return self.ma * self.pulse_width_ms / 1000.0


def make_settings(**kw) -> FluoroSettings:
    """FluoroSettings from keyword arguments; a bad value raises one clear UserError."""
    try:
        return FluoroSettings(**kw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "fluoro settings"
        raise UserError(f"{field}: {err['input']!r} is not valid ({err['msg']})") from None
