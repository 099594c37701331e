"""Frames from files, for ``needleguide analyse PATH...``.

Accepted, each path a file or a folder (a folder: its files in name order):

- what needleguide wrote: ``NAME.png`` with ``NAME.json`` or ``frame.json`` beside it (the
  JSON gives spacing, ``ImageToPatient``, modality and settings; ``*_inverted.png`` is the
  other display polarity; its ``truth`` is never read); and the DICOM files of
  ``--dicom`` (read as any DICOM, plus our private per-frame settings);
- DICOM ultrasound, XA, RF (single- and multi-frame; any photometric interpretation and
  the usual compressions): :mod:`needleguide.io.dicom_in`;
- videos (MP4, AVI, …) and PNG images without a frame JSON (a folder of them is one
  sequence): :mod:`needleguide.io.video`, with ``--spacing``.

:func:`read_sources` gives one :class:`~needleguide.io.dicom_in.Source` per file (or
sequence); :func:`frames_of` yields its analysable :class:`InputFrame` s: for ultrasound
one per frame and imaging area — the cleaned B-mode (:func:`needleguide.io.screen.bmode`:
screen text, calipers, colour and boxes blacked out) — for X-ray one per frame.
Bad input is one :class:`UserError` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from needleguide.errors import UserError
from needleguide.frame import Frame
from needleguide.io.dicom_in import Region, Source, read_dicom
from needleguide.io.screen import bmode, full_area, to_u8
from needleguide.io.video import VIDEO_SUFFIXES, read_png_sequence, read_video

MODALITIES = ("auto", "us", "fluoro")


@dataclasses.dataclass(frozen=True)
class InputFrame:
    """One analysable frame: its file, frame index, region index and the Frame."""

    file: str
    index: int
    region_index: int
    region: Region
    frame: Frame

    def describe(self) -> dict:
        """The file, frame, region and spacing keys of ``analyse --json``."""
        r = self.region
        return {"file": self.file, "frame": self.index,
                "region": {"index": self.region_index, "box": r.area.box,
                           "colour_flow": r.colour_flow},
                "spacing_mm": [round(float(x), 5) for x in r.spacing_mm],
                "spacing_source": r.spacing_source}


def _sidecar(png: Path) -> Path | None:
    for c in (png.with_suffix(".json"), png.parent / "frame.json"):
        if c.is_file():
            return c
    return None


def _our_png(p: Path, side: Path, spacing_mm: float | None) -> Source:
    import imageio.v2 as imageio

    try:
        img = np.asarray(imageio.imread(p))
    except Exception as e:  # noqa: BLE001 - imageio raises many types
        raise UserError(f"analyse: cannot read {p} as an image ({type(e).__name__})") from None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        sp = tuple(float(x) for x in meta["spacing_mm"])
        aff = np.asarray(meta.get("ImageToPatient", np.eye(4)), float)
        settings = dict(meta.get("settings", {}))
        shape = tuple(int(x) for x in meta.get("shape", img.shape[:2]))
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"analyse: {side} is not a frame JSON (needs spacing_mm)") from None
    box = full_area(img.shape[:2])
    if meta.get("modality") == "us" and shape != img.shape[:2]:
        box = _screen_box(img.shape[:2], shape)  # us.png is the scanner screen
    if box.mask.shape != shape or len(sp) != 2 or not all(np.isfinite(sp)) or min(sp) <= 0 \
            or aff.shape != (4, 4):
        raise UserError(f"analyse: {side} does not describe {p} (shape, spacing or "
                        "ImageToPatient)")
    src = "frame JSON"
    if spacing_mm is not None:
        sp, src = (spacing_mm, spacing_mm), "given"
    if p.stem.endswith("_inverted") and "display" in settings:
        settings["display"] = "white-bone" if settings["display"] == "black-bone" \
            else "black-bone"
    mod = meta.get("modality", "fluoro")
    mod = mod if mod in ("us", "fluoro") else "fluoro"
    one = {"spacing_mm": list(sp), "ImageToPatient": aff.tolist(), "settings": settings,
           "time_s": float(meta.get("time_s", 0.0)), "modality": mod}
    if mod == "us":
        px = to_u8(img)[None]
        return Source(p.name, mod, px, np.array([one["time_s"]]),
                      [Region(box, tuple(sp), src)], [one])
    else:
        g = img[..., :3].mean(axis=2) if img.ndim == 3 else img
        g = g.astype(np.float32)
        lo, hi = float(g.min()), float(g.max())
        px = ((g - lo) / (hi - lo) if hi > lo else np.zeros_like(g))[None]
    return Source(p.name, mod, px, np.array([one["time_s"]]),
                  [Region(full_area(img.shape[:2]), tuple(sp), src)], [one])


def _screen_box(screen: tuple[int, ...], frame: tuple[int, ...]):
    """Where ``needleguide us`` puts the B-mode frame on its screen PNG."""
    from needleguide.io.screen import Area
    from needleguide.us.display import HEADER_PX, PANEL_PX

    rows, cols = frame[:2]
    if screen[:2] != (rows + HEADER_PX + 10, cols + PANEL_PX + 20):
        return full_area(screen)
    return Area(10, HEADER_PX, 10 + cols - 1, HEADER_PX + rows - 1, np.ones((rows, cols), bool))


def _files(p: Path) -> list[Path]:
    if not p.exists():
        raise UserError(f"analyse: {p} does not exist")
    return sorted(x for x in p.iterdir() if x.is_file() and not x.name.startswith(".")) \
        if p.is_dir() else [p]


def _is_dicom(p: Path) -> bool:
    if p.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def read_sources(paths: Sequence[str | Path], spacing_mm: float | None = None,
                 modality: str = "auto") -> tuple[list[Source], list[str]]:
    """(every readable source at ``paths``, notes on the files skipped) (module
    docstring). ``modality`` is used for videos and plain PNGs ("auto": ultrasound for
    videos, fluoroscopy for PNGs). One file given alone that cannot be read is an error;
    among several, it is skipped with a note."""
    if spacing_mm is not None and not (0.01 <= spacing_mm <= 10.0):
        raise UserError(f"--spacing: {spacing_mm} is outside the allowed range [0.01, 10] mm")
    if modality not in MODALITIES:
        raise UserError(f"--modality: {modality!r} is not one of {', '.join(MODALITIES)}")
    out: list[Source] = []
    skipped: list[str] = []
    many = len(paths) > 1 or any(Path(x).is_dir() for x in paths)
    for path in paths:
        p = Path(path)
        files = _files(p)
        plain: list[Path] = []
        ours = p.is_dir() and any(f.suffix.lower() == ".png" and _sidecar(f) is not None
                                  for f in files)
        for f in files:
            if ours and f.suffix.lower() in VIDEO_SUFFIXES:
                continue  # a folder needleguide wrote: its videos show the same frames
            suf = f.suffix.lower()
            if suf == ".png":
                side = _sidecar(f)
                if side is not None:
                    out.append(_our_png(f, side, spacing_mm))
                else:
                    plain.append(f)
            elif suf in VIDEO_SUFFIXES or _is_dicom(f):
                try:
                    out.append(read_video(f, spacing_mm, "us" if modality == "auto"
                                          else modality) if suf in VIDEO_SUFFIXES
                               else read_dicom(f, spacing_mm))
                except UserError as e:
                    if not many:
                        raise
                    skipped.append(f"skipped {f.name}: {str(e).removeprefix('analyse: ')}")
            elif not p.is_dir():
                raise UserError(f"analyse: {f} is not a PNG, video or DICOM file")
        if plain:
            mod = "fluoro" if modality == "auto" else modality
            if p.is_dir() and len(plain) > 1:
                out.append(read_png_sequence(plain, p.name, spacing_mm, mod))
            else:
                out.extend(read_png_sequence([f], f.name, spacing_mm, mod) for f in plain)
        if p.is_dir() and not files:
            raise UserError(f"analyse: {p} holds no frame (a PNG, a video or a DICOM file)")
    if not out:
        raise UserError("analyse: no frame found in " + ", ".join(str(x) for x in paths)
                        + "".join(f"; {n}" for n in skipped))
    return out, skipped


def frames_of(src: Source) -> Iterator[InputFrame]:
    """The analysable frames of ``src`` (module docstring)."""
    for i in range(src.pixels.shape[0]):
        m = src.meta[i] if src.meta is not None else {}
        settings = dict(m.get("settings", {}))
        aff = np.asarray(m.get("ImageToPatient", np.eye(4)), float)
        t = float(m.get("time_s", src.times_s[i] if i < len(src.times_s) else 0.0))
        for k, reg in enumerate(src.regions):
            sp = tuple(float(x) for x in reg.spacing_mm)
            if "spacing_mm" in m:  # our own file: the Frame exactly as it was
                sp = tuple(float(x) for x in m["spacing_mm"])
            elif src.geometry:  # X-ray with a known geometry: as our imager makes Frames
                sp = (src.geometry["pixel_mm"],) * 2
                settings = {**src.geometry, **settings}
            if src.modality == "us":
                px = bmode(src.pixels[i], reg.area)
            else:
                px = src.pixels[i]
            if "ImageToPatient" not in m:
                aff = np.diag([sp[1], sp[0], 1.0, 1.0])
            fr = Frame(pixels=px, spacing_mm=sp, ImageToPatient=aff, time_s=t,
                       modality=src.modality, settings=settings)
            yield InputFrame(src.file, i, k, reg, fr)


__all__ = ["MODALITIES", "InputFrame", "frames_of", "read_sources"]
