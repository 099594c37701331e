"""The fluoroscope's irradiation event log: what a radiation dose structured report needs.

An *irradiation event* is "the loading of X-ray equipment caused by a single continuous
actuation of the equipment's irradiation switch" (DICOM PS3.16 TID 10003): one pedal
press of pulsed fluoroscopy, one spot image, one DSA run. :class:`ExposureLog` turns the
fluoroscope's exposures into such events:

* inside ``with fluoro.run(label):`` every exposure of the same pose, mode and kVp joins
  one event (a contrast run, a DSA run, a live sequence); a nested ``run`` joins the
  outer one;
* outside a run, a pulsed exposure joins the previous event when it continues it (same
  pose and kVp, and it follows the previous pulse after one pulse interval, within
  ``PEDAL_SLACK`` of it: the pedal was held); every other exposure (a pulse after a
  pause, a spot image) is an event of its own.

The log is bookkeeping only: the images do not depend on it. Its total
(:attr:`ExposureLog.total`, the fluoroscope's ``dose_total``) is the sum of the events'
doses in order, so ``sum_doses(log.events) == log.total`` holds exactly.

Positioner angles follow DICOM (PS3.3 C.8.7.5.1.2): the direction from the isocentre to
the detector, relative to the patient — primary angle in the transverse plane, 0° toward
the patient's anterior, +90° toward the patient's left (LAO), −90° toward the right
(RAO), ±180° posterior; secondary angle toward the head positive (cranial). The spinal AP
of a prone patient (detector above the back) is therefore a primary angle of 180°.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydicom.uid import generate_uid

from needleguide.frame import Dose

if TYPE_CHECKING:
    from needleguide.fluoro.carm import CArm
    from needleguide.fluoro.imager import Fluoroscope

Mode = Literal["pulsed", "spot", "dsa"]
PEDAL_SLACK = 1.5  # a pulse within 1.5 pulse intervals of the last one continues it


@dataclass(frozen=True)
class IrradiationEvent:
    """One irradiation event (one or more exposures of one pedal press or run).

    Times are the scene clock (s) plus the run's offset; ``duration_s`` runs from the
    first exposure's start to the last one's end (pulse interval for pulsed fluoroscopy,
    beam-on time for spot and DSA frames). ``pulses``: exposures (fluoroscopy pulses,
    spot images or DSA frames); ``pulse_rate_per_s``: their rate (the measured one for
    several exposures, the nominal one for a single exposure; 0 for a single spot image);
    ``pulse_width_ms``: mean beam-on time per exposure (tube load ÷ tube current);
    ``exposure_time_s``: total beam-on time; ``fluoro_time_s``: fluoroscopy time (pulses ×
    pulse interval; 0 for spot and DSA). Dose: reference air kerma at the interventional
    reference point (``source_reference_point_mm`` from the focal spot, 150 mm before the
    isocentre) and dose-area product there. Geometry: positioner angles (module
    docstring), source-to-image and source-to-isocentre distances, the collimated field
    at the detector plane (width × height, mm). Filtration: added aluminium and copper
    (mm) on top of 2.5 mm Al inherent. ``uid``: the Irradiation Event UID.
    """

    uid: str
    start_time_s: float
    duration_s: float
    mode: Mode
    view: str
    protocol: str
    kvp: float
    tube_current_ma: float
    pulse_width_ms: float
    pulse_rate_per_s: float
    pulses: int
    exposure_time_s: float
    tube_load_mas: float
    fluoro_time_s: float
    dap_gy_cm2: float
    reference_air_kerma_mgy: float
    primary_angle_deg: float
    secondary_angle_deg: float
    sid_mm: float
    source_isocenter_mm: float
    source_reference_point_mm: float
    field_mm: tuple[float, float]
    added_al_mm: float
    added_cu_mm: float
    last_time_s: float = 0.0  # scene time (+ offset) of the last exposure

    @property
    def dose(self) -> Dose:
        """The event's dose as a :class:`Dose` (reference air kerma, DAP, fluoro time)."""
        return Dose(self.reference_air_kerma_mgy, self.dap_gy_cm2, self.fluoro_time_s)

    @property
    def is_fluoroscopy(self) -> bool:
        return self.mode == "pulsed"

    @property
    def field_area_mm2(self) -> float:
        """Collimated field area at the detector plane (mm²)."""
        return float(self.field_mm[0] * self.field_mm[1])

    def to_json(self) -> dict[str, Any]:
        """Compact JSON: doses at full precision (sums can be checked exactly), geometry
        and technique rounded."""
        return {"uid": self.uid, "t_s": round(self.start_time_s, 3),
                "duration_s": round(self.duration_s, 4), "mode": self.mode,
                "view": self.view, "protocol": self.protocol, "pulses": self.pulses,
                "kvp": self.kvp, "ma": round(self.tube_current_ma, 4),
                "pulse_width_ms": round(self.pulse_width_ms, 3),
                "pulse_rate_per_s": round(self.pulse_rate_per_s, 3),
                "fluoro_time_s": self.fluoro_time_s, "dap_gy_cm2": self.dap_gy_cm2,
                "air_kerma_mgy": self.reference_air_kerma_mgy,
                "angles_deg": [round(self.primary_angle_deg, 2),
                               round(self.secondary_angle_deg, 2)]}


def sum_doses(events: Iterable[IrradiationEvent]) -> Dose:
    """The events' doses summed in order (equals the fluoroscope's ``dose_total``
    exactly when given its whole log)."""
    total = Dose()
    for e in events:
        total = total + e.dose
    return total


def positioner_angles_deg(carm: CArm) -> tuple[float, float]:
    """DICOM (primary, secondary) positioner angles (deg) of a C-arm pose: the direction
    isocentre → detector (the beam direction) relative to the patient (module
    docstring)."""
    bx, by, bz = (float(v) for v in carm.beam)
    primary = math.degrees(math.atan2(-bx, by))  # 0 anterior, +90 left (RAS x = right)
    secondary = math.degrees(math.asin(max(-1.0, min(1.0, bz))))
    return primary, secondary


@dataclass
class _Run:
    label: str
    offset_s: float
    depth: int = 1


class ExposureLog:
    """Irradiation events of one fluoroscope (module docstring). ``events`` is the list,
    oldest first; :attr:`total` their summed dose."""

    def __init__(self) -> None:
        self.events: list[IrradiationEvent] = []
        self._closed = Dose()  # sum of every event but the last, in order
        self._run: _Run | None = None
        self._run_first: int | None = None  # index of the run's first event
        self._last_key: tuple | None = None  # grouping key of the last event

    @property
    def total(self) -> Dose:
        return self._closed + self.events[-1].dose if self.events else Dose()

    def clear(self) -> None:
        self.events.clear()
        self._closed = Dose()
        self._last_key = None
        self._run_first = None if self._run is None else 0

    @contextlib.contextmanager
    def run(self, label: str, offset_s: float = 0.0) -> Iterator[None]:
        """Group the exposures made inside the block into one event per pose and mode
        (``label``: the acquisition protocol, e.g. "contrast test dose (DSA)");
        ``offset_s`` is added to the scene times (a run whose scenes restart at 0, such as
        an injection's, placed on the session clock). Nested runs join the outer one."""
        if self._run is not None:
            self._run.depth += 1
            try:
                yield
            finally:
                self._run.depth -= 1
            return
        self._run = _Run(label, float(offset_s))
        self._run_first = len(self.events)
        try:
            yield
        finally:
            self._run = None
            self._run_first = None
            self._last_key = None  # the next exposure starts a new event

    def record(self, fluoro: Fluoroscope, carm: CArm, mode: str, dose: Dose, mas: float,
               time_s: float) -> IrradiationEvent:
        """Book one exposure (called by the fluoroscope for every exposure): join the
        current event or start a new one; returns the event as it now stands."""
        s = fluoro.settings
        tech = fluoro.technique(carm)
        run = self._run
        t = float(time_s) + (run.offset_s if run is not None else 0.0)
        key = (fluoro._key(carm), mode, float(tech.kvp))
        ma = float(tech.ma)
        beam_s = mas / ma if ma > 0 else s.pulse_width_ms / 1000.0  # this exposure's on-time
        interval = 1.0 / s.pulse_rate if mode == "pulsed" else beam_s
        last = self.events[-1] if self.events else None
        joins = last is not None and key == self._last_key and (
            (run is not None and self._run_first is not None
             and len(self.events) > self._run_first)
            or (run is None and mode == "pulsed" and last.mode == "pulsed"
                and 0.0 < t - last.last_time_s <= PEDAL_SLACK * interval))
        if joins:
            ev = _merged(last, t, dose, mas, beam_s, interval)
            self.events[-1] = ev
            return ev
        if last is not None:
            self._closed = self._closed + last.dose
        g = carm.geometry
        primary, secondary = positioner_angles_deg(carm)
        rate = s.pulse_rate if mode == "pulsed" else (s.dsa_rate_fps if mode == "dsa" else 0.0)
        ev = IrradiationEvent(
            uid=generate_uid(), start_time_s=t, duration_s=interval, mode=mode,  # type: ignore[arg-type]
            view=carm.view or "custom", protocol=run.label if run is not None else
            _protocol(mode, carm.view), kvp=float(tech.kvp), tube_current_ma=ma,
            pulse_width_ms=beam_s * 1000.0, pulse_rate_per_s=float(rate), pulses=1,
            exposure_time_s=beam_s, tube_load_mas=float(mas),
            fluoro_time_s=dose.fluoro_time_s, dap_gy_cm2=dose.dap_gy_cm2,
            reference_air_kerma_mgy=dose.air_kerma_mgy, primary_angle_deg=primary,
            secondary_angle_deg=secondary, sid_mm=float(g.sid_mm),
            source_isocenter_mm=float(g.sod_mm),
            source_reference_point_mm=float(g.reference_point_mm),
            field_mm=(float(g.collimation_mm[0]), float(g.collimation_mm[1])),
            added_al_mm=float(s.added_al_mm), added_cu_mm=float(s.added_cu_mm),
            last_time_s=t)
        self.events.append(ev)
        self._last_key = key
        return ev


def _protocol(mode: str, view: str | None) -> str:
    what = {"pulsed": "pulsed fluoroscopy", "spot": "spot image", "dsa": "DSA"}[mode]
    return f"{what}, {view}" if view else what


def _merged(ev: IrradiationEvent, t: float, dose: Dose, mas: float, beam_s: float,
            interval: float) -> IrradiationEvent:
    n = ev.pulses + 1
    span = t - ev.start_time_s
    rate = (n - 1) / span if span > 0 else ev.pulse_rate_per_s
    total = ev.dose + dose
    on = ev.exposure_time_s + beam_s
    load = ev.tube_load_mas + mas
    return dataclasses.replace(
        ev, pulses=n, duration_s=span + interval, pulse_rate_per_s=rate,
        exposure_time_s=on, tube_load_mas=load, pulse_width_ms=on / n * 1000.0,
        tube_current_ma=load / on if on > 0 else ev.tube_current_ma,
        fluoro_time_s=total.fluoro_time_s, dap_gy_cm2=total.dap_gy_cm2,
        reference_air_kerma_mgy=total.air_kerma_mgy, last_time_s=t)


__all__ = ["ExposureLog", "IrradiationEvent", "Mode", "positioner_angles_deg",
           "sum_doses"]
