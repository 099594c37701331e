"""What the trainee sees: the frame's display (grey → RGB) with the overlays that are
switched on drawn in.

- tip / shaft: the needle analyser's detection (``guidance.tracking.NeedleTracker``):
  the tip as a cross (red when the tip is seen to its end, yellow when the shaft fades
  before it), the shaft as a green line.
- levels: fluoroscopy, the spine level labeller's names at the vertebral bodies
  (``guidance.levels_spine.label_spine``; the colours of its ``draw_spine``: green ≥ 0.8,
  amber 0.5–0.8, grey below); ultrasound: none (the labeller reads radiographs).
- alarm: fluoroscopy, the contrast classifier's outline and banner
  (``guidance.contrast_draw.draw_contrast``) on frames of the test dose's pose; the
  banner alone elsewhere; ultrasound, the last spread reading.
"""

from __future__ import annotations

import cv2
import numpy as np

from needleguide.guidance.contrast_draw import draw_contrast
from needleguide.guidance.overlay import (
    GREEN,
    RED,
    YELLOW,
    draw_banner,
    draw_cross,
    draw_segment,
    draw_text,
    to_rgb8,
)


def _level_colour(confidence: float) -> tuple[int, int, int]:
    return (60, 220, 60) if confidence >= 0.8 else \
        ((240, 200, 40) if confidence >= 0.5 else (170, 170, 170))


def draw_levels(img: np.ndarray, levels) -> None:
    """Each labelled vertebra: a tick beside its body centre, its name and confidence."""
    if levels is None or not levels.vertebrae:
        draw_text(img, "levels: not sure", (6, img.shape[0] - 28), (170, 170, 170))
        return
    for v in levels.vertebrae:
        c, r = int(round(v.col_px)), int(round(v.row_px))
        col = _level_colour(v.confidence)
        cv2.line(img, (c + 12, r), (c + 34, r), col, 2, cv2.LINE_AA)
        draw_text(img, f"{v.name} {v.confidence:.2f}", (c + 38, r + 5), col, 0.45)


def compose(frame, overlays: dict[str, bool], det=None, levels=None, contrast=None,
            alarm: bool = False, us_note: str | None = None) -> np.ndarray:
    """The RGB display of ``frame`` (without truth) with the switched-on ``overlays``:
    ``det`` the needle analyser's detection (or None), ``levels`` the spine labels of
    this pose (FL), ``contrast`` the classifier's result when this frame is of its
    pose, ``alarm`` the intravascular alarm is up, ``us_note`` the last US spread
    reading."""
    fl = frame.modality == "fluoro"
    h, w = frame.pixels.shape[:2]
    banner = False
    if fl and overlays.get("alarm") and contrast is not None:
        img = draw_contrast_fit(frame, contrast)
        banner = contrast.alarm_time_s is not None and \
            float(frame.time_s) >= contrast.alarm_time_s - 1e-6
    else:
        img = to_rgb8(frame.pixels)
    if overlays.get("levels") and fl:
        draw_levels(img, levels)  # (ultrasound: none; the page disables the switch)
    if det is not None and det.found:
        if overlays.get("shaft") and det.shaft_px is not None:
            draw_segment(img, det.shaft_px[0], det.shaft_px[1], GREEN, 1)
        if overlays.get("tip") and det.tip_px is not None:
            draw_cross(img, det.tip_px, RED if det.tip_visible else YELLOW, 8, 1)
    if overlays.get("alarm"):
        if alarm and not banner:
            draw_banner(img, "INTRAVASCULAR ALARM (contrast classifier)")
        if us_note and not fl:
            draw_text(img, us_note, (6, 40))
    return img


def draw_contrast_fit(frame, result) -> np.ndarray:
    """``draw_contrast`` at the frame's own size (it draws on ≥ 512 px)."""
    img = draw_contrast(frame, result)
    h, w = frame.pixels.shape[:2]
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return img


__all__ = ["compose", "draw_levels"]
