"""DICOM out for fluoroscopy: X-Ray Angiographic Image Storage (multi-frame).

:func:`write_xa_run` writes a run of fluoroscopy Frames of one C-arm pose (a spot image, a
pulsed-fluoroscopy loop, or a DSA run with its mask) as one XA object: the displayed
pixels (``frame.pixels``, float in [0, 1]) quantised to 12 bits (0..4095, MONOCHROME2,
16 bits allocated), the C-arm geometry and technique, cine timing from the frames'
times, and — for DSA — the Mask module that tells a viewer to subtract the mask. The
frames' own JSON description goes into the same private block as ultrasound's
(:func:`needleguide.io.dicom_us.add_private_frames`).

Positioner angles (PS3.3 C.8.7.5.1.2) give the position of the *detector* about the
patient in the patient-based frame, whatever the patient's position on the table:
primary angle in the transaxial plane, 0° with the detector at the patient's anterior
(chest), +90° at the patient's left (LAO), −90° at the right (RAO), range (−180, 180];
secondary angle in the sagittal plane, 0° anterior, +90° cranial. With the beam
direction b = (cos t·sin o, −cos t·cos o, sin t) in RAS of a C-arm at ``orbit_deg`` o and
``tilt_deg`` t (fluoro/carm.py; the detector lies along +b from the isocentre):
``primary = atan2(−b_x, b_y)`` = o ± 180°, ``secondary = asin(b_z)`` = t
(``needleguide.fluoro.dose_events.positioner_angles_deg``, so the images and the dose
report agree). So the spinal AP of a prone patient (orbit 0°: source under the table,
detector over the back) is primary ±180°, a right oblique of 30° (detector toward the
patient's right) is −150°, the lateral with the detector on the right (orbit +90°) is
−90°, and a cranial tilt is a positive secondary angle. PatientPosition is HFP (head
first prone: spinal interventions here are done prone).

Pixel values are the monitor's (PixelIntensityRelationship DISP: display-ready). The
display chain maps the log image linearly (range compression, window, edge enhancement,
polarity) and clips, so within the window they are linear in log intensity, and a
viewer's mask subtraction of a DSA run is a log subtraction (up to the display's sign:
on the black-bone display iodine is darker, on the white-bone brighter).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from needleguide.frame import Frame
from needleguide.io.dicom_study import Study, base_dataset, write_dataset
from needleguide.io.dicom_us import add_cine, add_private_frames, decimal_string

XA_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.12.1"
BITS_STORED = 12
MAX_VALUE = (1 << BITS_STORED) - 1


def orientation_letters(v_ras: Sequence[float]) -> str:
    """DICOM patient-orientation letters (L/R, A/P, H/F) of a RAS direction, the major
    component first, components under 25 % of the largest left out."""
    v = np.asarray(v_ras, float)
    letters = (("R", "L"), ("A", "P"), ("H", "F"))
    order = np.argsort(-np.abs(v))
    big = np.abs(v).max()
    return "".join(letters[i][0 if v[i] > 0 else 1] for i in order
                   if abs(v[i]) >= 0.25 * big)


def _quantise(pixels: np.ndarray) -> np.ndarray:
    p = np.nan_to_num(np.asarray(pixels, np.float32), nan=0.0)
    return np.rint(np.clip(p, 0.0, 1.0) * MAX_VALUE).astype(np.uint16)


def _check_run(frames: Sequence[Frame]) -> None:
    if not frames:
        raise ValueError("write_xa_run: no frames")
    f0 = frames[0]
    key = ("orbit_deg", "tilt_deg", "sid_mm", "sod_mm", "pixel_mm")
    for f in frames:
        if f.modality != "fluoro":
            raise ValueError(f"write_xa_run: a {f.modality!r} frame is not fluoroscopy")
        if f.pixels.ndim != 2 or f.shape != f0.shape:
            raise ValueError("write_xa_run: frames must be grey images of one shape")
        if any(f.settings.get(k) != f0.settings.get(k) for k in key):
            raise ValueError("write_xa_run: all frames of one run must share the C-arm pose "
                             "and geometry")


def _add_geometry(ds: Dataset, s: dict, rows: int, cols: int) -> None:
    """XA Positioner, X-Ray Table, X-Ray Collimator and the detector's acquisition data."""
    from needleguide.fluoro.carm import CArm
    from needleguide.fluoro.dose_events import positioner_angles_deg

    # the same angles as the dose report's irradiation events
    prim, sec = positioner_angles_deg(CArm(orbit_deg=float(s.get("orbit_deg", 0.0)),
                                           tilt_deg=float(s.get("tilt_deg", 0.0))))
    ds.PositionerMotion = "STATIC"
    ds.PositionerPrimaryAngle = decimal_string(prim)
    ds.PositionerSecondaryAngle = decimal_string(sec)
    sid, sod = s.get("sid_mm"), s.get("sod_mm")
    if sid is not None:
        ds.DistanceSourceToDetector = decimal_string(float(sid))
    if sod is not None:
        ds.DistanceSourceToPatient = decimal_string(float(sod))  # source to isocentre
    if sid is not None and sod is not None:
        ds.EstimatedRadiographicMagnificationFactor = decimal_string(float(sid) / float(sod))
    ds.TableMotion = "STATIC"
    pix = s.get("pixel_mm")
    if pix is not None:
        ds.ImagerPixelSpacing = [decimal_string(float(pix)), decimal_string(float(pix))]
        det = float(s.get("detector_mm", float(pix) * cols))
        ds.FieldOfViewShape = "RECTANGLE"
        ds.FieldOfViewDimensions = [int(round(det)), int(round(det))]
        w, h = (float(x) for x in s.get("collimation_mm", (det, det)))
        cx, cy = (cols - 1) / 2.0, (rows - 1) / 2.0
        ds.CollimatorShape = "RECTANGULAR"
        ds.CollimatorLeftVerticalEdge = int(max(0, np.ceil(cx - w / 2 / float(pix))))
        ds.CollimatorRightVerticalEdge = int(min(cols - 1, np.floor(cx + w / 2 / float(pix))))
        ds.CollimatorUpperHorizontalEdge = int(max(0, np.ceil(cy - h / 2 / float(pix))))
        ds.CollimatorLowerHorizontalEdge = int(min(rows - 1, np.floor(cy + h / 2 / float(pix))))
    if s.get("focal_spot_mm") is not None:
        ds.FocalSpots = decimal_string(float(s["focal_spot_mm"]))


def _add_technique(ds: Dataset, frames: Sequence[Frame], s: dict) -> None:
    """X-Ray Acquisition: kVp, tube current, exposure time, pulses, grid, filters, dose."""
    exposed = [f for f in frames if not f.settings.get("last_image_hold")]
    mode = str(s.get("mode", "pulsed"))
    ds.RadiationSetting = "SC" if mode == "pulsed" else "GR"
    ds.RadiationMode = "PULSED"
    ds.KVP = decimal_string(float(s.get("kvp", 0.0)))
    ma = float(s.get("ma", 0.0))
    ds.XRayTubeCurrent = int(round(ma))
    # beam-on time per exposure: tube load / tube current (a pulse: the pulse width)
    on_ms = [1000.0 * float(f.settings.get("mas", 0.0)) / float(f.settings["ma"])
             if float(f.settings.get("ma", 0.0)) > 0 else float(f.settings.get(
                 "pulse_width_ms", 0.0)) for f in exposed]
    width = sum(on_ms) / len(on_ms) if on_ms else float(s.get("pulse_width_ms", 0.0))
    ds.AveragePulseWidth = decimal_string(width)
    if width > 0:
        ds.ActualFrameDuration = max(1, int(round(width)))  # ms of X-ray per frame
    ds.ExposureTime = int(round(sum(on_ms)))  # ms, beam-on over the run
    mas = sum(float(f.settings.get("mas", 0.0)) for f in exposed)
    ds.Exposure = int(round(mas))
    ds.ExposureInuAs = int(round(mas * 1000.0))
    ds.Grid = "IN" if s.get("anti_scatter_grid") else "NONE"
    filt = s.get("filtration") or {}
    parts = [f"{float(filt[k]):g} mm {m}" for k, m in (("inherent_al_mm", "Al"),
             ("added_al_mm", "Al"), ("added_cu_mm", "Cu")) if float(filt.get(k, 0.0)) > 0]
    if parts:
        ds.TypeOfFilters = (", ".join(parts))[:64]
    dap = sum(f.dose.dap_gy_cm2 for f in frames)
    ds.ImageAndFluoroscopyAreaDoseProduct = decimal_string(dap * 10.0)  # dGy·cm²


def write_xa_run(path: Path, study: Study, frames: list[Frame], series_number: int,
                 description: str = "", mask_frame_numbers: list[int] | None = None, *,
                 contrast_mg_ml: float | None = None) -> Path:
    """Write ``frames`` (fluoroscopy, one C-arm pose) as one X-Ray Angiographic
    multi-frame object at ``path`` (also for a single frame) and return ``path``.

    ``mask_frame_numbers`` (1-based frame numbers, DSA): the frames are the native
    (unsubtracted) exposures; the Mask module asks for the average of those frames to be
    subtracted from the others (MaskOperation AVG_SUB) and RecommendedViewingMode is SUB.
    ``contrast_mg_ml``: iodinated contrast was injected (Contrast/Bolus module, iodine
    concentration in mg I/mL). Technique and geometry come from the first beam-on frame's
    settings; the dose-area product (dGy·cm²) and beam-on exposure time (ms) sum over the
    run; timing as :func:`needleguide.io.dicom_us.add_cine` (one frame: the pulse period
    1000 / ``pulse_rate`` ms)."""
    _check_run(frames)
    if mask_frame_numbers is not None:
        bad = [k for k in mask_frame_numbers if not 1 <= int(k) <= len(frames)]
        if not mask_frame_numbers or bad or len(mask_frame_numbers) >= len(frames):
            raise ValueError(f"write_xa_run: mask_frame_numbers {mask_frame_numbers} must be "
                             f"1-based frame numbers leaving contrast frames (of "
                             f"{len(frames)})")
    ref = next((f for f in frames if not f.settings.get("last_image_hold")), frames[0])
    s = ref.settings
    rows, cols = ref.shape
    ds = base_dataset(study, XA_SOP_CLASS, "XA", generate_uid(), series_number,
                      series_description=description or str(s.get("projection", "")))
    ds.PatientPosition = "HFP"
    ds.ContentDate, ds.ContentTime = study.date, study.time
    ds.ImageLaterality = "U"  # the spine: unpaired
    T = np.asarray(ref.ImageToPatient, float)
    ds.PatientOrientation = [orientation_letters(T[:3, 0]), orientation_letters(T[:3, 1])]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.PixelIntensityRelationship = "DISP"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, BITS_STORED, BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter, ds.WindowWidth = (MAX_VALUE + 1) // 2, MAX_VALUE + 1
    rate = float(s.get("pulse_rate", 15.0)) or 15.0
    add_cine(ds, [f.time_s for f in frames], 1000.0 / rate)
    _add_technique(ds, frames, s)
    _add_geometry(ds, s, rows, cols)
    if contrast_mg_ml is not None:
        ds.ContrastBolusAgent = f"iodinated contrast {contrast_mg_ml:g} mg I/mL"[:64]
        ds.ContrastBolusIngredient = "IODINE"
        ds.ContrastBolusIngredientConcentration = decimal_string(float(contrast_mg_ml))
    if mask_frame_numbers is not None:
        item = Dataset()
        item.MaskOperation = "AVG_SUB"
        masks = sorted({int(k) for k in mask_frame_numbers})
        item.MaskFrameNumbers = masks
        contrast = [k for k in range(1, len(frames) + 1) if k not in masks]
        item.ApplicableFrameRange = [min(contrast), max(contrast)]
        item.MaskOperationExplanation = "log subtraction of the pre-contrast mask"
        ds.MaskSubtractionSequence = DicomSequence([item])
        ds.RecommendedViewingMode = "SUB"
    add_private_frames(ds, frames)
    pix = np.stack([_quantise(f.pixels) for f in frames])
    ds.PixelData = np.ascontiguousarray(pix.astype("<u2")).tobytes()
    ds["PixelData"].VR = "OW"
    return write_dataset(Path(path), ds)


__all__ = ["XA_SOP_CLASS", "orientation_letters", "write_xa_run"]
