"""Real scanner files in: DICOM ultrasound, XA and RF, single- and multi-frame.

:func:`read_dicom` returns one :class:`Source` per file: the decoded frames (8-bit RGB or
grey screens for ultrasound, 0–1 floats for X-ray), frame times, and per imaging area its
box on the screen and its spacing, with where the spacing came from:

- Ultrasound: each 2-D tissue region of the Sequence of Ultrasound Regions
  (RegionSpatialFormat 1, RegionDataType 1, physical units cm) is an imaging area
  ("calibrated"); colour-flow regions (RegionDataType 2) inside it are reported. Without
  calibration the areas are found from the image (:mod:`needleguide.io.screen`) and the
  spacing is ``--spacing`` ("given") or :data:`ASSUMED_US_SPACING_MM` ("assumed").
- X-ray (XA, RF, DX, CR): Imager Pixel Spacing divided by the magnification SID / SOD
  (Distance Source to Detector / to Patient; "imager spacing / magnification"), else the
  Estimated Radiographic Magnification Factor, else Pixel Spacing, else ``--spacing``.
  That is the spacing reported; the Frame itself is built as our imager builds one: the
  detector's pixel pitch, with ``pixel_mm``, ``sid_mm`` and ``sod_mm`` in its settings
  (the analysers scale to the isocentre themselves).
- Files needleguide wrote carry each frame's settings in a private block
  (``io.dicom_us.frame_meta``); the display polarity and probe settings come from there.

Pixel data: MONOCHROME1/2, RGB, YBR_* (pydicom gives RGB) and PALETTE COLOR (through its LUT);
uncompressed, RLE, JPEG, JPEG-LS and JPEG 2000 (pylibjpeg / pyjpegls plugins).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from needleguide.errors import UserError
from needleguide.io.dicom_private import frame_meta
from needleguide.io.screen import Area, full_area, imaging_mask, to_u8

REFINE_SHARE = 0.6  # a calibrated region this share of the screen is masked to the image
ASSUMED_US_SPACING_MM = 0.2  # a typical scanner screen: 60–100 mm over 300–500 rows
US_CLASSES = ("1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1",
              "1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.3")
XRAY_MODALITIES = ("XA", "RF", "DX", "CR", "RG", "PX", "MG")


@dataclasses.dataclass
class Region:
    """One imaging area of a source: its place on the screen, spacing (row, col) in mm and
    where the spacing came from; ``colour_flow``: colour-flow boxes inside it."""

    area: Area
    spacing_mm: tuple[float, float]
    spacing_source: str
    colour_flow: list[list[int]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Source:
    """The frames of one file: ``pixels`` (n, rows, cols[, 3]), ``times_s`` (n,),
    modality ("us" | "fluoro"), the imaging regions, our own per-frame metadata if we
    wrote the file, and notes for the user (assumed spacing, ignored regions)."""

    file: str
    modality: str
    pixels: np.ndarray
    times_s: np.ndarray
    regions: list[Region]
    meta: list[dict] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    geometry: dict = dataclasses.field(default_factory=dict)


def _decode(ds, p: Path) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - pydicom and its plugins raise many types
        raise UserError(f"analyse: cannot decode the pixels of {p} ({type(e).__name__}: "
                        f"{str(e)[:120]})") from None
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:  # 16-bit LUT entries
            arr = (arr >> 8).astype(np.uint8)
        spp = 3
    if (nf == 1 and arr.ndim == 2 + (spp > 1)) or arr.ndim == 2:
        arr = arr[None]
    if pi == "MONOCHROME1":
        arr = arr.max() - arr
    return arr


def _times(ds, n: int) -> np.ndarray:
    if "FrameTimeVector" in ds and len(ds.FrameTimeVector) == n:
        return np.cumsum(np.asarray(ds.FrameTimeVector, float)) / 1000.0 \
            - float(ds.FrameTimeVector[0]) / 1000.0
    ft = ds.get("FrameTime")
    if ft is None and ds.get("CineRate"):
        ft = 1000.0 / float(ds.CineRate)
    return np.arange(n) * (float(ft) / 1000.0 if ft else 0.0)


def _us_regions(ds, shape, spacing_mm: float | None) -> tuple[list[Region], list[str]]:
    regions, notes, colour = [], [], []
    h, w = shape
    for r in ds.get("SequenceOfUltrasoundRegions", []):
        box = [int(r.get(k, -1)) for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                            "RegionLocationMaxX1", "RegionLocationMaxY1")]
        if 0 < box[2] - (w - 1) <= 2 or 0 < box[3] - (h - 1) <= 2:  # an inclusive-end slip
            box = [box[0], box[1], min(box[2], w - 1), min(box[3], h - 1)]
        if min(box) < 0 or box[2] >= w or box[3] >= h or box[2] <= box[0] or box[3] <= box[1]:
            notes.append(f"ultrasound region {box} lies outside the image: ignored")
            continue
        fmt, kind = int(r.get("RegionSpatialFormat", 0)), int(r.get("RegionDataType", 0))
        if fmt == 1 and kind == 2:
            colour.append(box)
            continue
        if fmt != 1 or kind != 1:
            continue
        ux, uy = int(r.get("PhysicalUnitsXDirection", 0)), int(r.get("PhysicalUnitsYDirection", 0))
        dx, dy = float(r.get("PhysicalDeltaX", 0) or 0), float(r.get("PhysicalDeltaY", 0) or 0)
        x0, y0, x1, y1 = box
        if spacing_mm is not None:
            sp, src = (spacing_mm, spacing_mm), "given"
        elif ux == uy == 3 and dx > 0 and dy > 0:
            sp, src = (abs(dy) * 10.0, abs(dx) * 10.0), "calibrated"
        else:
            sp, src = (ASSUMED_US_SPACING_MM,) * 2, "assumed"
        regions.append(Region(Area(x0, y0, x1, y1, np.ones((y1 - y0 + 1, x1 - x0 + 1), bool)),
                              sp, src))
    for reg in regions:
        a = reg.area
        reg.colour_flow = [b for b in colour if a.x0 <= b[0] and b[2] <= a.x1
                           and a.y0 <= b[1] and b[3] <= a.y1]
    return regions, notes


def _refine(pixels: np.ndarray, reg: Region) -> Region:
    """A calibrated region that spans most of the screen (some scanners calibrate the
    whole screen) is masked to the imaging area found in it (text, calipers and scale
    bars around a sector stay out); its box, the frame's pixel grid, is kept. Regions
    that already frame the image are used as they are."""
    a = reg.area
    h, w = pixels.shape[1:3]
    if (a.x1 - a.x0 + 1) * (a.y1 - a.y0 + 1) < REFINE_SHARE * h * w:
        return reg
    crop = pixels[:8, a.y0:a.y1 + 1, a.x0:a.x1 + 1]
    found = imaging_mask(crop, min_share=0.1, max_areas=1)
    if not found:
        return reg
    f = found[0]
    mask = np.zeros(a.mask.shape, bool)
    mask[f.y0:f.y1 + 1, f.x0:f.x1 + 1] = f.mask
    return dataclasses.replace(reg, area=Area(a.x0, a.y0, a.x1, a.y1, mask))


def _xray_spacing(ds, spacing_mm: float | None, p: Path) -> tuple[tuple[float, float], str]:
    if spacing_mm is not None:
        return (spacing_mm, spacing_mm), "given"
    ips = ds.get("ImagerPixelSpacing")
    sid, sod = ds.get("DistanceSourceToDetector"), ds.get("DistanceSourceToPatient")
    if ips is not None and sid and sod and float(sod) > 0 and float(sid) >= float(sod):
        m = float(sid) / float(sod)
        return (float(ips[0]) / m, float(ips[1]) / m), "imager spacing / magnification"
    erm = ds.get("EstimatedRadiographicMagnificationFactor")
    if ips is not None and erm and float(erm) >= 1.0:
        m = float(erm)
        return (float(ips[0]) / m, float(ips[1]) / m), "imager spacing / estimated " \
            "magnification"
    if ds.get("PixelSpacing") is not None:
        ps = ds.PixelSpacing
        return (float(ps[0]), float(ps[1])), "pixel spacing"
    if ips is not None:
        return (float(ips[0]), float(ips[1])), "imager spacing (no magnification known)"
    raise UserError(f"analyse: {p} gives no pixel spacing (no Imager Pixel Spacing or "
                    "Pixel Spacing); give --spacing MM (mm per pixel at the patient)")


def read_dicom(p: Path, spacing_mm: float | None = None) -> Source:
    """One DICOM file as a :class:`Source` (module docstring)."""
    import pydicom

    try:
        ds = pydicom.dcmread(p)
    except Exception as e:  # noqa: BLE001 - pydicom raises many types
        raise UserError(f"analyse: cannot read {p} as DICOM ({type(e).__name__})") from None
    if "PixelData" not in ds:
        raise UserError(f"analyse: {p} holds no image (SOP class "
                        f"{getattr(ds.get('SOPClassUID'), 'name', '?')})")
    arr = _decode(ds, p)
    n = arr.shape[0]
    meta = frame_meta(ds)
    if meta is not None and len(meta) != n:
        meta = None
    modality = str(ds.get("Modality", ""))
    is_us = modality == "US" or str(ds.get("SOPClassUID", "")) in US_CLASSES
    notes: list[str] = []
    if is_us:
        px = to_u8(arr)
        regions, notes = _us_regions(ds, px.shape[1:3], spacing_mm)
        regions = [_refine(px, r) for r in regions]
        if not regions:
            sp = (spacing_mm,) * 2 if spacing_mm is not None else (ASSUMED_US_SPACING_MM,) * 2
            src = "given" if spacing_mm is not None else "assumed"
            areas = imaging_mask(px) or [full_area(px.shape[1:3])]
            regions = [Region(a, sp, src) for a in areas]
        if any(r.spacing_source == "assumed" for r in regions):
            notes.append(f"{p.name}: no ultrasound calibration in the file; spacing assumed "
                         f"{ASSUMED_US_SPACING_MM} mm per pixel (give --spacing MM)")
        return Source(p.name, "us", px, _times(ds, n), regions, meta, notes)
    if modality and modality not in XRAY_MODALITIES:
        notes.append(f"{p.name}: modality {modality} read as an X-ray image")
    sp, src = _xray_spacing(ds, spacing_mm, p)
    geo = {}
    if src == "imager spacing / magnification":  # the Frame as our imager makes it
        geo = {"pixel_mm": float(ds.ImagerPixelSpacing[0]),
               "sid_mm": float(ds.DistanceSourceToDetector),
               "sod_mm": float(ds.DistanceSourceToPatient)}
    a = arr.astype(np.float32)
    if arr.ndim == 4:
        a = a[..., :3].mean(axis=3)
    bits = int(ds.get("BitsStored", 8) or 8)
    a /= float(2 ** bits - 1) if a.max() <= 2 ** bits - 1 else float(a.max())
    return Source(p.name, "fluoro", a, _times(ds, n), [Region(full_area(a.shape[1:3]), sp, src)],
                  meta, notes, geo)


__all__ = ["ASSUMED_US_SPACING_MM", "Region", "Source", "read_dicom"]
