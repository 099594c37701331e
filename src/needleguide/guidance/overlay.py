"""Shared drawing helpers for guidance overlays (uint8 BGR/RGB images, OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

GREEN = (0, 255, 0)
RED = (255, 0, 0)
YELLOW = (255, 255, 0)
CYAN = (0, 255, 255)


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Frame pixels (uint8, or float 0..1; grey or RGB) -> a new uint8 RGB image."""
    p = np.asarray(pixels)
    if p.dtype != np.uint8:
        p = (np.clip(p, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if p.ndim == 2:
        p = cv2.cvtColor(p, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(p[..., :3]).copy()


def draw_cross(img: np.ndarray, xy: tuple[float, float], color=RED, size: int = 8,
               thickness: int = 1) -> None:
    """A '+' centred at pixel (col, row), in place."""
    x, y = int(round(xy[0])), int(round(xy[1]))
    cv2.line(img, (x - size, y), (x + size, y), color, thickness, cv2.LINE_AA)
    cv2.line(img, (x, y - size), (x, y + size), color, thickness, cv2.LINE_AA)


def draw_segment(img: np.ndarray, a: tuple[float, float], b: tuple[float, float],
                 color=GREEN, thickness: int = 1) -> None:
    """A line from pixel a to pixel b (col, row), in place."""
    cv2.line(img, (int(round(a[0])), int(round(a[1]))), (int(round(b[0])), int(round(b[1]))),
             color, thickness, cv2.LINE_AA)


def draw_text(img: np.ndarray, text: str, xy: tuple[int, int] = (6, 18), color=YELLOW,
              scale: float = 0.5) -> None:
    """Text with a dark outline (readable on any background), in place."""
    cv2.putText(img, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def draw_banner(img: np.ndarray, text: str, color=RED) -> None:
    """A filled banner across the top with ``text`` (alarms), in place."""
    cv2.rectangle(img, (0, 0), (img.shape[1] - 1, 24), color, -1)
    cv2.putText(img, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1,
                cv2.LINE_AA)


def draw_needle(img: np.ndarray, det, truth_tip: tuple[float, float] | None = None) -> None:
    """Overlay of a needle detection (``guidance.needle.NeedleDetection``): shaft line,
    tip cross (red when the tip is seen to its end; yellow, the line ahead dashed and
    "tip not seen" when the shaft fades before its tip), confidence text; the true tip as
    a cyan circle if given. In place."""
    if truth_tip is not None:
        cv2.circle(img, (int(round(truth_tip[0])), int(round(truth_tip[1]))), 6, CYAN, 1,
                   cv2.LINE_AA)
    if det.shaft_px is not None and det.found:
        draw_segment(img, det.shaft_px[0], det.shaft_px[1], GREEN, 1)
    seen = det.found and det.tip_visible
    if det.tip_px is not None and det.found:
        draw_cross(img, det.tip_px, RED if seen else YELLOW, 8, 1)
        if not seen and det.shaft_px is not None:
            # the tip lies somewhere on, beyond the last seen point: the line ahead dashed
            (c0, r0), (c1, r1) = det.shaft_px
            d = np.array([c1 - c0, r1 - r0], float)
            n = float(np.hypot(*d))
            if n > 1.0:
                d /= n
                for k in range(2, int(0.6 * n), 12):
                    a = np.array([c1, r1]) + d * k
                    draw_segment(img, tuple(a), tuple(a + d * 6), YELLOW, 1)
    label = (f"needle {det.confidence:.2f}  {det.angle_deg:.0f} deg"
             + ("" if seen else "  tip not seen") if det.found
             else f"no needle ({det.confidence:.2f})")
    draw_text(img, label)
