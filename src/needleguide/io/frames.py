"""Frames from files: what needleguide wrote (a PNG and its frame JSON), or any PNG or
DICOM image with a pixel spacing.

- ``fluoro.png`` / ``fluoro_inverted.png`` with ``frame.json`` beside them (as
  ``needleguide fluoro`` writes them; any ``NAME.png`` with ``NAME.json`` too): the JSON
  gives the spacing, ``ImageToPatient``, modality and settings (the C-arm geometry and the
  display polarity; ``*_inverted.png`` is the other polarity). Its ``truth`` is never read.
- a folder: every such PNG in it (sorted), and its ``*.dcm`` files;
- any other PNG, or a DICOM file (single or multi-frame; MONOCHROME1 inverted): the pixel
  spacing is ``spacing_mm`` (mm per pixel at the patient), else the DICOM's
  PixelSpacing / ImagerPixelSpacing; the display polarity is unknown (``settings``
  without ``display``).
Bad input is one :class:`UserError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from needleguide.errors import UserError
from needleguide.frame import Frame


def _sidecar(png: Path) -> Path | None:
    for c in (png.with_suffix(".json"), png.parent / "frame.json"):
        if c.is_file():
            return c
    return None


def _gray01(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=2)
    if a.ndim != 2 or a.size == 0:
        raise ValueError("not a 2-D image")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError("holds NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _plain(img: np.ndarray, spacing_mm: float, settings: dict | None = None) -> Frame:
    aff = np.diag([spacing_mm, spacing_mm, 1.0, 1.0])
    return Frame(pixels=img, spacing_mm=(spacing_mm, spacing_mm), ImageToPatient=aff,
                 time_s=0.0, modality="fluoro", settings=dict(settings or {}),)


def _png(p: Path, spacing_mm: float | None) -> Frame:
    import imageio.v2 as imageio

    try:
        img = _gray01(imageio.imread(p))
    except Exception as e:  # noqa: BLE001 - imageio raises many types
        raise UserError(f"analyse: cannot read {p} as an image ({type(e).__name__})") from None
    side = _sidecar(p)
    if side is None:
        if spacing_mm is None:
            raise UserError(f"analyse: {p} has no frame JSON beside it; give --spacing MM "
                            "(mm per pixel at the patient)")
        return _plain(img, spacing_mm)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        sp = tuple(float(x) for x in meta["spacing_mm"])
        aff = np.asarray(meta.get("ImageToPatient", np.eye(4)), float)
        settings = dict(meta.get("settings", {}))
        shape = tuple(int(x) for x in meta.get("shape", img.shape))
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"analyse: {side} is not a frame JSON (needs spacing_mm)") from None
    if shape != img.shape or len(sp) != 2 or not all(np.isfinite(sp)) or min(sp) <= 0 \
            or aff.shape != (4, 4):
        raise UserError(f"analyse: {side} does not describe {p} (shape, spacing or "
                        "ImageToPatient)")
    if spacing_mm is not None:
        sp = (spacing_mm, spacing_mm)
    if p.stem.endswith("_inverted") and "display" in settings:
        settings["display"] = "white-bone" if settings["display"] == "black-bone" \
            else "black-bone"
    mod = meta.get("modality", "fluoro")
    return Frame(pixels=img, spacing_mm=sp, ImageToPatient=aff,
                 time_s=float(meta.get("time_s", 0.0)),
                 modality=mod if mod in ("us", "fluoro") else "fluoro", settings=settings)


def _dicom(p: Path, spacing_mm: float | None) -> list[Frame]:
    import pydicom

    try:
        ds = pydicom.dcmread(p)
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - pydicom raises many types
        raise UserError(f"analyse: cannot read {p} as DICOM ({type(e).__name__})") from None
    sp = spacing_mm
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if sp is None and key in ds:
            sp = float(ds[key].value[0])
    if sp is None or not np.isfinite(sp) or sp <= 0:
        raise UserError(f"analyse: {p} gives no pixel spacing; give --spacing MM")
    frames = arr if arr.ndim == 3 and "NumberOfFrames" in ds else arr[None]
    out = []
    for a in frames:
        g = _gray01(a)
        if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
            g = 1.0 - g
        out.append(_plain(g, float(sp)))
    return out


def read_frames(path: str | Path, spacing_mm: float | None = None
                ) -> list[tuple[str, Frame]]:
    """(name, Frame) of every frame at ``path`` (module docstring)."""
    p = Path(path)
    if spacing_mm is not None and not (0.01 <= spacing_mm <= 10.0):
        raise UserError(f"--spacing: {spacing_mm} is outside the allowed range [0.01, 10] mm")
    if p.is_dir():
        pngs = sorted(x for x in p.glob("*.png") if _sidecar(x) is not None)
        dcms = sorted(p.glob("*.dcm"))
        if not pngs and not dcms:
            raise UserError(f"analyse: {p} holds no frame (a PNG with its frame JSON, or "
                            "a .dcm file)")
        return [(x.name, _png(x, spacing_mm)) for x in pngs] + \
            [(f"{x.name}#{i}" if len(fs) > 1 else x.name, f) for x in dcms
             for fs in [_dicom(x, spacing_mm)] for i, f in enumerate(fs)]
    if not p.exists():
        raise UserError(f"analyse: {p} does not exist")
    if p.suffix.lower() == ".png":
        return [(p.name, _png(p, spacing_mm))]
    fs = _dicom(p, spacing_mm)
    return [(f"{p.name}#{i}" if len(fs) > 1 else p.name, f) for i, f in enumerate(fs)]


__all__ = ["read_frames"]
