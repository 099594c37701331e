"""X-Ray Radiation Dose SR (RDSR) of a fluoroscopy session's irradiation events.

:func:`write_dose_sr` writes one X-Ray Radiation Dose SR object (SOP class
1.2.840.10008.5.1.4.1.1.88.67, Modality SR) whose content tree is DICOM PS3.16 TID 10001
"Projection X-Ray Radiation Dose" (root concept (113701, DCM, "X-Ray Radiation Dose
Report")):

* procedure reported: Projection X-Ray, with intent Guidance; acquisition device type:
  fluoroscopy-guided projection radiography system; the recording observer (TID 1002 /
  1004: the simulated C-arm as the irradiating device); scope of accumulation: the study;
* TID 10002 "Accumulated X-Ray Dose" (single plane) with TID 10004 / 10007 content:
  fluoroscopy and acquisition DAP and Dose (RP) totals, total fluoro and acquisition
  time, the number of radiographic frames (spot images and DSA frames) and the reference
  point definition (15 cm from the isocentre toward the source: the IEC interventional
  reference point that :meth:`Fluoroscope.exposure_dose` uses);
* one TID 10003 "Irradiation Event X-Ray Data" per event (with the TID 10003B source and
  10003C mechanical rows): acquisition plane, event UID, start date-time, event type
  (fluoroscopy or stationary acquisition), acquisition protocol, target region, DAP,
  Dose (RP), reference point, fluoro mode, pulse rate, number of pulses, irradiation
  duration, exposure time, tube current, pulse width, kVp, tube load, collimated field,
  added filters (TID 10007-style X-Ray Filters containers), positioner angles and the
  source distances;
* source of dose information: system calculated.

Units follow UCUM as the templates require: Gy·cm² → Gy.m2 (÷ 10⁴), mGy → Gy (÷ 10³).
Each numeric item carries the exact double (Floating Point Value) beside its decimal
string. The shared modules (patient, study, series, equipment, SOP common) come from
:func:`needleguide.io.dicom_study.base_dataset`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

from highdicom.sr import (
    CodeContentItem,
    ContainerContentItem,
    DateTimeContentItem,
    NumContentItem,
    RelationshipTypeValues,
    TextContentItem,
    UIDRefContentItem,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from needleguide.fluoro.dose_events import IrradiationEvent, sum_doses
from needleguide.io.dicom_study import MODEL, Study, base_dataset, write_dataset

XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
CONTAINS = RelationshipTypeValues.CONTAINS
HAS_CONCEPT_MOD = RelationshipTypeValues.HAS_CONCEPT_MOD
HAS_OBS_CONTEXT = RelationshipTypeValues.HAS_OBS_CONTEXT
HAS_PROPERTIES = RelationshipTypeValues.HAS_PROPERTIES

GY_M2 = Code("Gy.m2", "UCUM", "Gy.m2")
GY = Code("Gy", "UCUM", "Gy")
SECOND = Code("s", "UCUM", "s")
MS = Code("ms", "UCUM", "ms")
MA = Code("mA", "UCUM", "mA")
KV = Code("kV", "UCUM", "kV")
MM = Code("mm", "UCUM", "mm")
M2 = Code("m2", "UCUM", "m2")
DEG = Code("deg", "UCUM", "deg")
UAS = Code("uA.s", "UCUM", "uA.s")
PULSE_RATE = Code("{pulse}/s", "UCUM", "pulse/s")
PULSES = Code("{pulses}", "UCUM", "pulses")
NO_UNITS = Code("1", "UCUM", "no units")
ACQUISITION_DEVICE_TYPE = Code("122142", "DCM", "Acquisition Device Type")
YES = Code("373066001", "SCT", "Yes")
DOSE_SOURCE = codes.DCM.SystemCalculated  # CID 10020: computed from the technique
#: default target region (CID 4031)
SPINE = codes.SCT.Spine


def ds_string(value: float) -> str:
    """``value`` as a DICOM DS string (at most 16 characters, as many significant digits
    as fit; pydicom's formatter can give 17 for values just below a power of ten)."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    for digits in range(15, 0, -1):
        s = f"{float(value):.{digits}g}"
        if len(s) <= 16:
            return s
    raise ValueError(f"cannot write {value!r} as DS")


def _num(name: Code, value: float, unit: Code) -> NumContentItem:
    """A NUM item: the decimal string (DS) and the exact double (Floating Point Value)."""
    item = NumContentItem(name=name, value=float(value), unit=unit,
                          relationship_type=CONTAINS)
    mv = item.MeasuredValueSequence[0]
    mv.NumericValue = ds_string(value)
    mv.FloatingPointValue = float(value)
    return item


def _code(name: Code, value: Code, rel=CONTAINS) -> CodeContentItem:
    return CodeContentItem(name=name, value=value, relationship_type=rel)


def _text(name: Code, value: str, rel=CONTAINS) -> TextContentItem:
    return TextContentItem(name=name, value=value[:1024] or "-", relationship_type=rel)


def _container(name: Code, items: list[Dataset], template: str | None = None,
               rel=CONTAINS) -> ContainerContentItem:
    c = ContainerContentItem(name=name, is_content_continuous=False, template_id=template,
                             relationship_type=rel)
    c.ContentSequence = items
    return c


def _plane() -> CodeContentItem:
    return _code(codes.DCM.AcquisitionPlane, codes.DCM.SinglePlane, HAS_CONCEPT_MOD)


def _reference_point() -> CodeContentItem:
    return _code(codes.DCM.ReferencePointDefinition,
                 codes.DCM._15cmFromIsocenterTowardSource)


def _observer(study: Study, device_uid: str) -> list[Dataset]:
    """TID 1002 / 1004: the recording device (the simulated C-arm, also the irradiating
    device)."""
    return [
        _code(codes.DCM.ObserverType, codes.DCM.Device, HAS_OBS_CONTEXT),
        UIDRefContentItem(name=codes.DCM.DeviceObserverUID, value=device_uid,
                          relationship_type=HAS_OBS_CONTEXT),
        _text(codes.DCM.DeviceObserverName, "needleguide C-arm", HAS_OBS_CONTEXT),
        _text(codes.DCM.DeviceObserverManufacturer, "needleguide", HAS_OBS_CONTEXT),
        _text(codes.DCM.DeviceObserverModelName, MODEL, HAS_OBS_CONTEXT),
        _text(codes.DCM.DeviceObserverSerialNumber, "0", HAS_OBS_CONTEXT),
        _code(codes.DCM.DeviceRoleInProcedure, codes.DCM.IrradiatingDevice,
              HAS_OBS_CONTEXT),
    ]


def _accumulated(events: Sequence[IrradiationEvent]) -> ContainerContentItem:
    """TID 10002 (with the TID 10004 and 10007 rows): totals over ``events``."""
    fl = [e for e in events if e.is_fluoroscopy]
    acq = [e for e in events if not e.is_fluoroscopy]
    total, d_fl, d_acq = sum_doses(events), sum_doses(fl), sum_doses(acq)
    items = [
        _plane(),
        _num(codes.DCM.FluoroDoseAreaProductTotal, d_fl.dap_gy_cm2 / 1e4, GY_M2),
        _num(codes.DCM.FluoroDoseRPTotal, d_fl.air_kerma_mgy / 1e3, GY),
        _num(codes.DCM.TotalFluoroTime, d_fl.fluoro_time_s, SECOND),
        _num(codes.DCM.AcquisitionDoseAreaProductTotal, d_acq.dap_gy_cm2 / 1e4, GY_M2),
        _num(codes.DCM.AcquisitionDoseRPTotal, d_acq.air_kerma_mgy / 1e3, GY),
        _num(codes.DCM.TotalAcquisitionTime, sum(e.exposure_time_s for e in acq), SECOND),
        _num(codes.DCM.TotalNumberOfRadiographicFrames, sum(e.pulses for e in acq),
             NO_UNITS),
        _num(codes.DCM.DoseAreaProductTotal, total.dap_gy_cm2 / 1e4, GY_M2),
        _num(codes.DCM.DoseRPTotal, total.air_kerma_mgy / 1e3, GY),
    ]
    if events:
        items.append(_num(codes.DCM.DistanceSourceToReferencePoint,
                          events[0].source_reference_point_mm, MM))
    items.append(_reference_point())
    return _container(codes.DCM.AccumulatedXRayDoseData, items, "10002")


def _filters(e: IrradiationEvent) -> list[Dataset]:
    """X-Ray Filters containers (TID 10007-style): the added flat filters."""
    out = []
    for material, mm in ((codes.SCT.Aluminum, e.added_al_mm), (codes.SCT.Copper,
                                                                e.added_cu_mm)):
        if mm > 0:
            out.append(_container(codes.DCM.XRayFilters, [
                _code(codes.DCM.XRayFilterType, codes.DCM.FlatFilter),
                _code(codes.DCM.XRayFilterMaterial, material),
                _num(codes.DCM.XRayFilterThicknessMinimum, mm, MM),
                _num(codes.DCM.XRayFilterThicknessMaximum, mm, MM)]))
    if not out:
        out.append(_container(codes.DCM.XRayFilters, [
            _code(codes.DCM.XRayFilterType, codes.DCM.NoFilter)]))
    return out


def _event(e: IrradiationEvent, when: _dt.datetime, region: Code) -> ContainerContentItem:
    """TID 10003 (with the 10003B source and 10003C mechanical rows) of one event."""
    fluoro = e.is_fluoroscopy
    # DT without an offset (dcmtk rejects "+0000" inside content items): the dataset's
    # Timezone Offset From UTC says these are UTC, like the study date and time
    started = (when + _dt.timedelta(seconds=e.start_time_s)).replace(tzinfo=None)
    items: list[Dataset] = [
        _plane(),
        UIDRefContentItem(name=codes.DCM.IrradiationEventUID, value=e.uid,
                          relationship_type=CONTAINS),
        DateTimeContentItem(name=codes.DCM.DatetimeStarted,
                            value=started.strftime("%Y%m%d%H%M%S.%f"),
                            relationship_type=CONTAINS),
        _code(codes.DCM.IrradiationEventType,
              codes.SCT.Fluoroscopy if fluoro else codes.DCM.StationaryAcquisition),
        _text(codes.DCM.AcquisitionProtocol, e.protocol),
        _code(codes.DCM.TargetRegion, region),
        _num(codes.DCM.DoseAreaProduct, e.dap_gy_cm2 / 1e4, GY_M2),
        _num(codes.DCM.DoseRP, e.reference_air_kerma_mgy / 1e3, GY),
        _reference_point(),
        _num(codes.DCM.PositionerPrimaryAngle, e.primary_angle_deg, DEG),
        _num(codes.DCM.PositionerSecondaryAngle, e.secondary_angle_deg, DEG),
        _num(codes.DCM.DistanceSourceToReferencePoint, e.source_reference_point_mm, MM),
        _num(codes.DCM.DistanceSourceToIsocenter, e.source_isocenter_mm, MM),
        _num(codes.DCM.DistanceSourceToDetector, e.sid_mm, MM),
    ]
    if fluoro:
        items.append(_code(codes.DCM.FluoroMode, codes.DCM.Pulsed))
    if e.pulse_rate_per_s > 0:
        items.append(_num(codes.DCM.PulseRate, e.pulse_rate_per_s, PULSE_RATE))
    items += [
        _num(codes.DCM.NumberOfPulses, e.pulses, PULSES),
        _num(codes.DCM.IrradiationDuration, e.duration_s, SECOND),
        _num(codes.DCM.ExposureTime, e.exposure_time_s * 1000.0, MS),
        _num(codes.DCM.XRayTubeCurrent, e.tube_current_ma, MA),
        _num(codes.DCM.PulseWidth, e.pulse_width_ms, MS),
        _num(codes.DCM.KVP, e.kvp, KV),
        _num(codes.DCM.Exposure, e.tube_load_mas * 1000.0, UAS),
        _num(codes.DCM.CollimatedFieldArea, e.field_area_mm2 / 1e6, M2),
        _num(codes.DCM.CollimatedFieldHeight, e.field_mm[1], MM),
        _num(codes.DCM.CollimatedFieldWidth, e.field_mm[0], MM),
        *_filters(e),
    ]
    return _container(codes.DCM.IrradiationEventXRayData, items, "10003")


def dose_report_content(study: Study, events: Sequence[IrradiationEvent],
                        target_region: Code = SPINE) -> ContainerContentItem:
    """The TID 10001 content tree (root container) of ``events`` in ``study``."""
    procedure = _code(codes.DCM.ProcedureReported, codes.DCM.ProjectionXRay, HAS_CONCEPT_MOD)
    procedure.ContentSequence = [_code(codes.SCT.HasIntent, codes.SCT.GuidanceIntent,
                                       HAS_CONCEPT_MOD)]
    scope = _code(codes.DCM.ScopeOfAccumulation, codes.DCM.Study, HAS_OBS_CONTEXT)
    scope.ContentSequence = [UIDRefContentItem(name=codes.DCM.StudyInstanceUID,
                                               value=study.study_uid,
                                               relationship_type=HAS_PROPERTIES)]
    items: list[Dataset] = [
        procedure,
        _code(ACQUISITION_DEVICE_TYPE, codes.DCM.FluoroscopyGuidedProjectionRadiographySystem),
        *_observer(study, generate_uid()),
        scope,
        _code(codes.DCM.XRaySourceDataAvailable, YES),
        _code(codes.DCM.XRayMechanicalDataAvailable, YES),
        _accumulated(events),
        *(_event(e, study.when, target_region) for e in events),
        _code(codes.DCM.SourceOfDoseInformation, DOSE_SOURCE),
    ]
    return _container(codes.DCM.XRayRadiationDoseReport, items, "10001", rel=None)


def write_dose_sr(path: Path, study: Study, events: Sequence[IrradiationEvent],
                  series_number: int, target_region: Code = SPINE) -> Path:
    """Write the X-Ray Radiation Dose SR of ``events`` (a fluoroscope's ``events``, in
    order) into ``study`` as series ``series_number``; ``target_region``: a CID 4031
    code (default Spine). Returns ``path``."""
    ds = base_dataset(study, XRAY_RADIATION_DOSE_SR, "SR", generate_uid(), series_number,
                      series_description="Radiation dose report")
    ds.TimezoneOffsetFromUTC = "+0000"  # study.when is UTC
    # SR Document Series: no performed procedure step to reference
    ds.ReferencedPerformedProcedureStepSequence = []
    # SR Document General
    ds.ContentDate, ds.ContentTime = study.date, study.time
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = []
    # SR Document Content: the root container's attributes
    for elem in dose_report_content(study, events, target_region):
        ds.add(elem)
    return write_dataset(path, ds)


__all__ = ["XRAY_RADIATION_DOSE_SR", "dose_report_content", "ds_string", "write_dose_sr"]
