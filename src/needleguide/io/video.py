"""Frames from video files (MP4, AVI, anything ffmpeg reads) and PNG sequences, as
:class:`~needleguide.io.dicom_in.Source` objects: screens grabbed from a scanner, so the
imaging area is found from the image and the spacing is ``--spacing`` (or assumed for
ultrasound, with a note)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from needleguide.errors import UserError
from needleguide.io.dicom_in import ASSUMED_US_SPACING_MM, Region, Source
from needleguide.io.screen import full_area, imaging_mask, to_u8

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv")
MAX_FRAMES = 5000


def _source(name: str, px: np.ndarray, times_s: np.ndarray, spacing_mm: float | None,
            modality: str) -> Source:
    notes = []
    if spacing_mm is None:
        if modality != "us":
            raise UserError(f"analyse: {name} has no pixel spacing; give --spacing MM "
                            "(mm per pixel at the patient)")
        sp, src = (ASSUMED_US_SPACING_MM,) * 2, "assumed"
        notes.append(f"{name}: no calibration in the file; spacing assumed "
                     f"{ASSUMED_US_SPACING_MM} mm per pixel (give --spacing MM)")
    else:
        sp, src = (spacing_mm,) * 2, "given"
    if modality == "us":
        areas = imaging_mask(px) or [full_area(px.shape[1:3])]
        return Source(name, "us", px, times_s, [Region(a, sp, src) for a in areas], None, notes)
    g = px.astype(np.float32)
    if g.ndim == 4:
        g = g[..., :3].mean(axis=3)
    g /= 255.0
    return Source(name, "fluoro", g, times_s, [Region(full_area(g.shape[1:3]), sp, src)],
                  None, notes)


def read_video(p: Path, spacing_mm: float | None, modality: str = "us") -> Source:
    """Every frame of a video file (RGB), with its presentation times (s)."""
    import imageio.v2 as imageio

    try:
        rd = imageio.get_reader(p, format="FFMPEG")
        fps = float(rd.get_meta_data().get("fps") or 0.0)
        frames = []
        for i, im in enumerate(rd):
            if i >= MAX_FRAMES:
                break
            frames.append(np.asarray(im)[..., :3])
        rd.close()
    except Exception as e:  # noqa: BLE001 - ffmpeg and imageio raise many types
        raise UserError(f"analyse: cannot read {p} as a video ({type(e).__name__})") from None
    if not frames:
        raise UserError(f"analyse: {p} holds no video frame")
    px = np.stack(frames)
    times = np.arange(len(frames)) / fps if fps > 0 else np.zeros(len(frames))
    return _source(p.name, px, times, spacing_mm, modality)


def read_png_sequence(pngs: list[Path], name: str, spacing_mm: float | None,
                      modality: str = "us", fps: float = 0.0) -> Source:
    """PNG files (sorted by the caller) as the frames of one sequence; all the same size."""
    import imageio.v2 as imageio

    frames = []
    for q in pngs:
        try:
            a = to_u8(np.asarray(imageio.imread(q)))
        except Exception as e:  # noqa: BLE001 - imageio raises many types
            raise UserError(f"analyse: cannot read {q} as an image ({type(e).__name__})") \
                from None
        if a.ndim == 3:
            a = a[..., :3]
        if frames and a.shape != frames[0].shape:
            raise UserError(f"analyse: {q} is {a.shape[1]}×{a.shape[0]}, unlike the first "
                            f"frame of the sequence ({frames[0].shape[1]}×{frames[0].shape[0]})")
        frames.append(a)
    times = np.arange(len(frames)) / fps if fps > 0 else np.zeros(len(frames))
    return _source(name, np.stack(frames), times, spacing_mm, modality)


__all__ = ["VIDEO_SUFFIXES", "read_png_sequence", "read_video"]
