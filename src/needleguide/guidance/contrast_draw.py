"""Overlay of the contrast analyser's result on an FL frame (display only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from needleguide.frame import Frame

if TYPE_CHECKING:
    from needleguide.guidance.contrast import ContrastResult


def draw_contrast(frame: Frame, result: ContrastResult) -> np.ndarray:
    """RGB uint8 overlay: the opacified outline (red; the one at the alarm when ``frame`` is
    the alarm frame, with the ridge that fired a 'ridge' alarm in orange), the pattern
    label and, on frames at or after the alarm, a red "INTRAVASCULAR" banner with the
    alarm time, the delay after the contrast was first seen and the cue that fired
    (shape, pieces, ridge, saturation, plateau)."""
    g = np.asarray(frame.pixels, np.float32)
    g = g / 255.0 if g.max() > 1.5 else g
    img = cv2.cvtColor((np.clip(g, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    scale = max(1, 512 // img.shape[0])
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    alarm = result.alarm_time_s
    at_alarm = alarm is not None and abs(float(frame.time_s) - alarm) < 1e-6
    mask = result.alarm_mask if at_alarm and result.alarm_mask is not None else result.mask
    _outline(img, mask, (230, 40, 40))
    if at_alarm and result.alarm_ridge is not None:
        _outline(img, result.alarm_ridge, (255, 160, 0))
    w = img.shape[1]
    if alarm is not None and float(frame.time_s) >= alarm - 1e-6:
        seen = "" if result.arrival_time_s is None else \
            f" (+{alarm - result.arrival_time_s:.2f} s)"
        cv2.rectangle(img, (0, 0), (w, 34), (200, 0, 0), -1)
        cv2.putText(img, f"INTRAVASCULAR  t={alarm:.2f} s{seen}", (8, 24),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.65, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(img, result.alarm_cause, (w - 110, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 230, 230), 1, cv2.LINE_AA)
    cv2.putText(img, f"{result.label} ({result.confidence:.2f})  t={frame.time_s:.2f} s",
                (8, img.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 220, 60), 1,
                cv2.LINE_AA)
    return img


def _outline(img: np.ndarray, mask: np.ndarray | None, rgb: tuple[int, int, int]) -> None:
    """Draw the outline of ``mask`` (any resolution) on ``img`` in place."""
    if mask is None or not mask.any():
        return
    m = cv2.resize(mask.astype(np.uint8), (img.shape[1], img.shape[0]),
                   interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, contours, -1, rgb, 1, cv2.LINE_AA)
