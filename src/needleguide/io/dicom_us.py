"""DICOM out for ultrasound: Ultrasound Multi-frame Image Storage of scanner screens.

:func:`write_us_cine` writes one or more B-mode Frames as a clinician's scanner stores them:
the whole *screen* (``needleguide.us.display.screen``: image, depth scale, settings text;
RGB, burned-in annotation) of each frame, with a Sequence of Ultrasound Regions that
calibrates the B-mode image on the screen (and the colour-flow box, if any), cine timing
from the frames' times, and the transducer's data.

Both image writers (US here, XA in :mod:`needleguide.io.dicom_xa`) keep each frame's own
description (spacing, ``ImageToPatient``, settings, time, modality; never the truth) in
the private block of :mod:`needleguide.io.dicom_private` (private creator
:data:`PRIVATE_CREATOR` in group :data:`PRIVATE_GROUP`, element (0071,xx01), a UT holding
a JSON list with one object per frame; :func:`frame_meta` reads it back), so that a
reader can rebuild the Frames exactly. The cine and private helpers here are shared by
both writers.

Region calibration (PS3.3 C.8.5.5): the B-mode region is where the frame's pixels sit on
the screen (rows ``HEADER_PX`` .., columns 10 ..), 1:1; physical units cm; the reference
pixel is the screen pixel nearest the centre of the transducer face (the probe frame's
origin), and its reference physical values are that pixel's lateral position and depth
in the probe frame (cm), so that a pixel's position is ``ReferencePixelPhysicalValue +
(pixel − ReferencePixel) · PhysicalDelta`` exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from needleguide.frame import Frame
from needleguide.io.dicom_private import PRIVATE_CREATOR, PRIVATE_GROUP, add_frame_meta, frame_meta
from needleguide.io.dicom_study import Study, add_frame_of_reference, base_dataset, write_dataset

US_MULTIFRAME_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.3.1"
#: nominal frame time of a single-frame ultrasound object (ms): the 15 frames/s at which
#: ``needleguide us`` renders its cines (a frame alone has no interval to measure)
US_FRAME_TIME_MS = 1000.0 / 15.0
_LOCATION_X0 = 10  # the B-mode image's first screen column (us/display.py)


# ---- shared by the image writers -------------------------------------------------------
def add_private_frames(ds: Dataset, frames: Sequence[Frame]) -> None:
    """The private block of :mod:`needleguide.io.dicom_private` (one JSON object per
    frame), leaving out settings whose key starts with "_" (e.g. a kept envelope)."""
    add_frame_meta(ds, [dataclasses.replace(f, settings={
        k: v for k, v in f.settings.items() if not str(k).startswith("_")}) for f in frames])


def add_cine(ds: Dataset, times_s: Sequence[float], single_frame_time_ms: float) -> None:
    """Multi-frame and Cine modules from the frames' times (s): NumberOfFrames; uniform
    intervals (within 1 µs) → FrameTime (ms; ``single_frame_time_ms`` for one frame) and
    FrameIncrementPointer to it, else FrameTimeVector (ms between frames, the first 0) and
    the pointer to it (the Cine module allows FrameTime only with that pointer);
    CineRate and RecommendedDisplayFrameRate (frames/s, rounded, of the mean interval),
    ActualFrameDuration (ms, the mean interval) and EffectiveDuration (s). Times must
    not decrease."""
    t = np.asarray(list(times_s), float)
    if t.size == 0:
        raise ValueError("no frames to write")
    d_ms = np.diff(t) * 1000.0
    if (d_ms < 0).any():
        raise ValueError("frame times must not decrease")
    ds.NumberOfFrames = int(t.size)
    mean_ms = float(d_ms.mean()) if d_ms.size and d_ms.mean() > 0 else float(
        single_frame_time_ms)
    if d_ms.size and float(np.ptp(d_ms)) > 1e-3:
        ds.FrameTimeVector = [decimal_string(0.0)] + [decimal_string(x) for x in d_ms]
        ds.FrameIncrementPointer = 0x00181065  # FrameTimeVector
    else:
        ds.FrameTime = decimal_string(mean_ms)
        ds.FrameIncrementPointer = 0x00181063  # FrameTime
    rate = max(1, int(round(1000.0 / mean_ms)))
    ds.CineRate = rate
    ds.RecommendedDisplayFrameRate = rate
    ds.PreferredPlaybackSequencing = 0  # looping
    ds.ActualFrameDuration = max(1, int(round(mean_ms)))
    ds.EffectiveDuration = decimal_string(float(t[-1] - t[0]) + mean_ms / 1000.0)


def decimal_string(x: float) -> str:
    """A DS value (at most 16 characters)."""
    s = f"{x:.6g}"
    return s if len(s) <= 16 else f"{x:.6e}"


# ---- ultrasound ----------------------------------------------------------------------
def _image_origin_mm(frame: Frame) -> tuple[float, float]:
    """(x0, y0): probe-frame position (mm) of the centre of pixel (0, 0)."""
    t = np.asarray(frame.settings.get("ImageToProbe", np.eye(4)), float)
    return float(t[0, 3]), float(t[1, 3])


def _region(x0: int, y0: int, x1: int, y1: int, sp_mm: tuple[float, float],
            phys0_mm: tuple[float, float], ref_px: tuple[int, int], data_type: int,
            flags: int, frame: Frame) -> Dataset:
    """One item of the Sequence of Ultrasound Regions: screen rectangle (x0, y0)–(x1, y1)
    (inclusive), spacing (row, col) mm, ``phys0_mm`` the probe-frame (x, depth) of screen
    pixel (x0, y0)'s image pixel, ``ref_px`` the reference pixel relative to (x0, y0)."""
    s = frame.settings
    it = Dataset()
    it.RegionSpatialFormat = 1  # 2D
    it.RegionDataType = data_type  # 1 tissue, 2 colour flow
    it.RegionFlags = flags
    it.RegionLocationMinX0, it.RegionLocationMinY0 = int(x0), int(y0)
    it.RegionLocationMaxX1, it.RegionLocationMaxY1 = int(x1), int(y1)
    it.PhysicalUnitsXDirection = 3  # cm
    it.PhysicalUnitsYDirection = 3
    it.PhysicalDeltaX = float(sp_mm[1]) / 10.0
    it.PhysicalDeltaY = float(sp_mm[0]) / 10.0
    it.ReferencePixelX0, it.ReferencePixelY0 = int(ref_px[0]), int(ref_px[1])
    it.ReferencePixelPhysicalValueX = (phys0_mm[0] + ref_px[0] * sp_mm[1]) / 10.0
    it.ReferencePixelPhysicalValueY = (phys0_mm[1] + ref_px[1] * sp_mm[0]) / 10.0
    f_mhz = s.get("frequency_mhz")
    if f_mhz is not None:
        it.TransducerFrequency = int(round(float(f_mhz) * 1000.0))  # kHz
    if data_type == 2 and s.get("prf_hz") is not None:
        it.PulseRepetitionFrequency = int(round(float(s["prf_hz"])))  # Hz
    steer = s.get("steer_deg")
    if steer is not None:
        it.SteeringAngle = float(steer)
    return it


def us_regions(frame: Frame) -> list[Dataset]:
    """The Sequence of Ultrasound Regions of ``frame``'s screen: the B-mode region (where
    the frame's pixels sit) and, with a colour Doppler box, the colour-flow region (the
    box's rectangle in the probe frame mapped to screen pixels, clipped to the image)."""
    from needleguide.us.display import HEADER_PX

    rows, cols = frame.shape
    sp = (float(frame.spacing_mm[0]), float(frame.spacing_mm[1]))
    x0_mm, y0_mm = _image_origin_mm(frame)
    # reference pixel: nearest the centre of the transducer face (probe origin)
    ref = (int(round(-x0_mm / sp[1])), int(round(-y0_mm / sp[0])))
    box = frame.settings.get("doppler")
    regions = [_region(_LOCATION_X0, HEADER_PX, _LOCATION_X0 + cols - 1, HEADER_PX + rows - 1,
                       sp, (x0_mm, y0_mm), ref, 1, 1 if box is not None else 0, frame)]
    if box is not None:
        bx0, bx1, bz0, bz1 = (float(v) for v in box)
        c0 = int(np.clip(np.ceil((bx0 - x0_mm) / sp[1] - 1e-9), 0, cols - 1))
        c1 = int(np.clip(np.floor((bx1 - x0_mm) / sp[1] + 1e-9), 0, cols - 1))
        r0 = int(np.clip(np.ceil((bz0 - y0_mm) / sp[0] - 1e-9), 0, rows - 1))
        r1 = int(np.clip(np.floor((bz1 - y0_mm) / sp[0] + 1e-9), 0, rows - 1))
        phys = (x0_mm + c0 * sp[1], y0_mm + r0 * sp[0])
        regions.append(_region(_LOCATION_X0 + c0, HEADER_PX + r0, _LOCATION_X0 + c1,
                               HEADER_PX + r1, sp, phys, (ref[0] - c0, ref[1] - r0), 2, 0,
                               frame))
    return regions


_TRANSDUCER = {"linear": "LINEAR", "curvilinear": "CURVED LINEAR"}


def write_us_cine(path: Path, study: Study, frames: list[Frame], series_number: int,
                  title: str = "") -> Path:
    """Write ``frames`` (ultrasound, same shape, spacing, placement and Doppler box) as one
    Ultrasound Multi-frame Image object (also for a single frame) at ``path``: each
    frame's scanner screen (``screen(frame, title)``, RGB uint8), the Sequence of
    Ultrasound Regions (:func:`us_regions`), cine timing from ``frame.time_s`` (s; one
    frame: :data:`US_FRAME_TIME_MS`), transducer data, and the per-frame private JSON.
    Returns ``path``."""
    from needleguide.us.display import screen

    if not frames:
        raise ValueError("write_us_cine: no frames")
    f0 = frames[0]
    for f in frames:
        if f.modality != "us":
            raise ValueError(f"write_us_cine: a {f.modality!r} frame is not ultrasound")
        if (f.shape != f0.shape or tuple(f.spacing_mm) != tuple(f0.spacing_mm)
                or _image_origin_mm(f) != _image_origin_mm(f0)
                or f.settings.get("doppler") != f0.settings.get("doppler")):
            raise ValueError("write_us_cine: all frames of one object must share the image "
                             "geometry (shape, spacing, placement, Doppler box)")
    screens = np.stack([screen(f, title) for f in frames])
    s = f0.settings
    ds = base_dataset(study, US_MULTIFRAME_SOP_CLASS, "US", generate_uid(), series_number,
                      series_description=title or "ultrasound")
    add_frame_of_reference(ds, study)
    ds.ContentDate, ds.ContentTime = study.date, study.time
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "YES"  # the screen's settings text and title
    ds.RecognizableVisualFeatures = "NO"
    doppler = s.get("doppler") is not None
    ds.ImageType = ["ORIGINAL", "PRIMARY", "MUSCULOSKELETAL", "0011" if doppler else "0001"]
    ds.ImageLaterality = "U"  # the spine: unpaired
    ds.LossyImageCompression = "00"
    # Image Pixel / US Image
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(screens.shape[1]), int(screens.shape[2])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    add_cine(ds, [f.time_s for f in frames], US_FRAME_TIME_MS)
    # transducer
    probe = str(s.get("probe", ""))
    if probe in _TRANSDUCER:
        ds.TransducerType = _TRANSDUCER[probe]
        ds.TransducerData = [probe, f"{float(s.get('frequency_mhz', 0)):.1f} MHz", ""]
    if s.get("depth_mm") is not None:
        ds.DepthOfScanField = int(round(float(s["depth_mm"])))
    ds.ProcessingFunction = (f"gain {float(s.get('gain_db', 0)):+g} dB, DR "
                             f"{float(s.get('dynamic_range_db', 0)):g} dB")[:64]
    ds.SequenceOfUltrasoundRegions = DicomSequence(us_regions(f0))
    add_private_frames(ds, frames)
    ds.PixelData = np.ascontiguousarray(screens, dtype=np.uint8).tobytes()
    ds["PixelData"].VR = "OB"
    return write_dataset(Path(path), ds)


__all__ = ["PRIVATE_CREATOR", "PRIVATE_GROUP", "US_MULTIFRAME_SOP_CLASS", "add_cine",
           "add_private_frames", "decimal_string", "frame_meta", "us_regions",
           "write_us_cine"]
