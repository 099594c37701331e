"""One frame analysed: vertebral levels and the needle, as the fixed keys of
``needleguide analyse``.

``analyse_frame(frame) -> dict`` with

- ``levels``: ``{anchor, vertebrae: [{name, px, confidence}]}`` from
  :func:`levels_spine.label_spine` (fluoroscopy only; an ultrasound frame gets anchor
  "none" and no vertebrae). ``anchor``: "S1", "T12", "T1", "C2", "C7" (several joined by
  "+"), "none" or "conflict"; ``name``: "C1" … "S1", or "v1", "v2", … (cranial first)
  when the count is not anchored; ``px``: [col, row] of the body centre; ``confidence``:
  calibrated probability that the vertebra's best name is right (< 0.5 when unnamed).
- ``needle``: ``{found, tip_px, tip_mm, confidence, tip_visible}`` from
  :func:`needle.detect_needle`: ``tip_px`` [col, row], ``tip_mm`` [x, y] in the image
  plane (mm from the centre of the top-left pixel), null when not found.

When a frame does not say its display polarity (a plain PNG or DICOM), the levels are
read in both polarities and the one with the higher best-offset posterior (then more
vertebrae) is kept. Reads only the frame (never ``truth``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from needleguide.frame import Frame


def _levels(frame: Frame):
    from needleguide.guidance.levels_spine import SpineLevels, label_spine

    if frame.modality != "fluoro":
        return SpineLevels("none"), frame
    if "display" in frame.settings:
        return label_spine(frame), frame
    best = None
    for disp in ("white-bone", "black-bone"):
        f = dataclasses.replace(frame, settings={**frame.settings, "display": disp})
        r = label_spine(f)
        key = (r.posterior, len(r.vertebrae))
        if best is None or key > best[0]:
            best = (key, r, f)
    return best[1], best[2]


def analyse_frame(frame: Frame, draw: bool = True) -> tuple[dict, np.ndarray | None]:
    """(result with the fixed keys, RGB overlay or None when not ``draw``) of one frame
    (module docstring)."""
    from needleguide.guidance.levels_spine import draw_spine
    from needleguide.guidance.needle import detect_needle
    from needleguide.guidance.overlay import draw_needle

    frame = frame.without_truth()
    lv, shown = _levels(frame)
    det = detect_needle(shown)
    needle = {"found": bool(det.found),
              "tip_px": [round(float(x), 2) for x in det.tip_px] if det.found else None,
              "tip_mm": [round(float(x), 2) for x in det.tip_image_mm]
              if det.found and det.tip_image_mm is not None else None,
              "confidence": round(float(det.confidence), 3),
              "tip_visible": bool(det.found and det.tip_visible)}
    if not draw:
        return {"levels": lv.to_json(), "needle": needle}, None
    if frame.modality == "us":
        import cv2

        g = shown.pixels if shown.pixels.ndim == 3 else cv2.cvtColor(
            np.asarray(shown.pixels, np.uint8), cv2.COLOR_GRAY2RGB)
        img = np.ascontiguousarray(g[..., :3], dtype=np.uint8)
    else:
        img = draw_spine(shown, lv)
    if det.found:
        k = img.shape[0] / frame.shape[0]
        sc = dataclasses.replace(
            det, tip_px=tuple(float(x) * k for x in det.tip_px),
            shaft_px=tuple(tuple(float(x) * k for x in p) for p in det.shaft_px)
            if det.shaft_px is not None else None)
        draw_needle(img, sc)
    return {"levels": lv.to_json(), "needle": needle}, img


__all__ = ["analyse_frame"]
