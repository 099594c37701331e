"""Scanner screen: the B-mode frame with depth scale (cm), focus marker, orientation marker,
grey map bar and the acquisition settings, as an RGB uint8 image (for PNG / video)."""

from __future__ import annotations

import cv2
import numpy as np

from needleguide.frame import Frame

PANEL_PX = 150
HEADER_PX = 34
FONT = cv2.FONT_HERSHEY_SIMPLEX


def screen(frame: Frame, title: str = "") -> np.ndarray:
    """Compose the scanner screen of ``frame`` (RGB uint8)."""
    img = frame.pixels
    rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
    rows, cols = rgb.shape[:2]
    H, W = rows + HEADER_PX + 10, cols + PANEL_PX + 20
    out = np.zeros((H, W, 3), np.uint8)
    oy, ox = HEADER_PX, 10
    out[oy:oy + rows, ox:ox + cols] = rgb
    s = frame.settings
    sp = frame.spacing_mm[0]
    y0 = float(np.asarray(s.get("ImageToProbe", np.eye(4)))[1, 3])
    depth = float(s.get("depth_mm", rows * sp))
    white = (235, 235, 235)
    grey = (150, 150, 150)
    # depth scale: ticks every 5 mm, labels every cm
    xs = ox + cols + 4
    for mm in np.arange(0.0, depth + 1e-6, 5.0):
        r = int(round(oy + (mm - y0) / sp))
        if r < oy or r >= oy + rows:
            continue
        big = abs(mm / 10 - round(mm / 10)) < 1e-6
        cv2.line(out, (xs, r), (xs + (10 if big else 5), r), white if big else grey, 1)
        if big:
            cv2.putText(out, f"{int(round(mm / 10))}", (xs + 13, r + 5), FONT, 0.42, white, 1,
                        cv2.LINE_AA)
    cv2.putText(out, "cm", (xs + 10, oy + rows - 4), FONT, 0.4, grey, 1, cv2.LINE_AA)
    # focus marker: a triangle pointing at the image at the focal depth
    f = s.get("focus_mm")
    if f is not None:
        r = int(round(oy + (float(f) - y0) / sp))
        tri = np.array([[xs - 1, r], [xs + 8, r - 5], [xs + 8, r + 5]], np.int32)
        cv2.fillPoly(out, [tri], (0, 200, 255))
    # orientation marker (probe marker side = image left)
    cv2.circle(out, (ox + 10, oy + 10), 5, (0, 170, 255), -1, cv2.LINE_AA)
    # grey map bar
    bx = W - 32
    by0, by1 = oy + 20, oy + min(rows, 220)
    ramp = np.linspace(255, 0, by1 - by0).astype(np.uint8)
    out[by0:by1, bx:bx + 12] = ramp[:, None, None]
    cv2.rectangle(out, (bx - 1, by0 - 1), (bx + 12, by1), grey, 1)
    # settings text
    lines = [
        f"{s.get('probe', '')}",
        f"{float(s.get('frequency_mhz', 0)):.1f} MHz",
        f"D {depth / 10:.1f} cm",
        f"G {float(s.get('gain_db', 0)):+.0f} dB",
        f"DR {float(s.get('dynamic_range_db', 0)):.0f} dB",
    ]
    if abs(float(s.get("steer_deg", 0.0))) > 0:
        lines.append(f"steer {float(s['steer_deg']):+.0f} deg")
    if s.get("doppler") is not None:
        lines.append(f"CF PRF {float(s.get('prf_hz', 0)) / 1000:.1f}k")
    tx = ox + cols + 40
    for i, t in enumerate(lines):
        cv2.putText(out, t, (tx, oy + 240 + 18 * i), FONT, 0.42, white, 1, cv2.LINE_AA)
    if title:
        cv2.putText(out, title, (10, 22), FONT, 0.55, white, 1, cv2.LINE_AA)
    return out
