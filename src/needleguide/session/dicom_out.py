"""A session's DICOM study (``simulate --dicom``): the frames it showed and its dose report.

One study per session, its patient the phantom (``Phantom^<Region> BMI <bmi> seed <seed>``,
:func:`needleguide.io.dicom_study.phantom_study`). Each :class:`ImagingGroup` of the
result becomes one series: fluoroscopy groups an XA multi-frame object
(``XA0001.dcm``, … : a view's shots during the advance, a spot image, a contrast run —
DSA with its mask frame), ultrasound groups a US cine (``US0002.dcm``, …); a fluoroscopy
session also gets its X-Ray Radiation Dose SR (``SR0001.dcm``, the last series). The XA
and US writers live in ``needleguide.io.dicom_xa`` / ``needleguide.io.dicom_us``; a
writer that is not installed is skipped and named in the returned
:class:`DicomExport`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.sr.codedict import codes

from needleguide.errors import UserError
from needleguide.session.models import SessionResult


@dataclass
class DicomExport:
    """What :func:`write_session_dicom` wrote (paths, in series order) and the writers it
    could not find (module names)."""

    folder: Path
    written: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def target_region(procedure: str, region: str):
    """The CID 4031 code of a procedure's target region (dose report)."""
    if "sacroiliac" in procedure:
        return codes.SCT.SacroiliacJoint
    return {"cervical": codes.SCT.CervicalSpine, "thoracic": codes.SCT.ThoracicSpine,
            "lumbar": codes.SCT.LumbarSpine}.get(region, codes.SCT.Spine)


def _writer(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def write_session_dicom(result: SessionResult, folder: Path) -> DicomExport:
    """Write ``result``'s study into ``folder`` (created). The session must have been run
    with ``keep_frames`` for its images; the dose SR needs only its events."""
    from needleguide.io.dicom_rdsr import write_dose_sr
    from needleguide.io.dicom_study import phantom_study

    cfg = result.config
    if not cfg.keep_frames:
        raise UserError("dicom: the session kept no frames (run it with keep_frames=True)")
    pat = result.extra["patient"]
    study = phantom_study(pat["region"], float(pat["bmi"]), int(pat["seed"]),
                          f"{cfg.procedure} under {cfg.modality}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = DicomExport(folder)
    xa = _writer("needleguide.io.dicom_xa", "write_xa_run")
    us = _writer("needleguide.io.dicom_us", "write_us_cine")
    series = 0
    for g in result.imaging:
        if not g.frames:
            continue
        series += 1
        what = f"{g.label}, {g.view}"
        if g.modality == "fluoro":
            if xa is None:
                out.missing.append("needleguide.io.dicom_xa")
                continue
            path = folder / f"XA{series:04d}.dcm"
            xa(path, study, g.frames, series, description=what,
               mask_frame_numbers=g.mask_frame_numbers)
        else:
            if us is None:
                out.missing.append("needleguide.io.dicom_us")
                continue
            path = folder / f"US{series:04d}.dcm"
            us(path, study, g.frames, series, title=what)
        out.written.append(path)
    if result.dose_events:
        out.written.append(write_dose_sr(folder / "SR0001.dcm", study, result.dose_events,
                                         series + 1, target_region(cfg.procedure,
                                                                   pat["region"])))
    out.missing = sorted(set(out.missing))
    return out


__all__ = ["DicomExport", "target_region", "write_session_dicom"]
