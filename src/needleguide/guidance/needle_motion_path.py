"""The needle's path from where its motion was, frame after frame (for
``guidance.needle_motion``).

Every moving region the needle causes lies on its line: the tissue pushed ahead of an
advancing tip, the tissue dragged along a jiggled shaft. Their centroids over the frames
since the needle was found therefore trace the line, even where the shaft itself is too
steep or too dark to see — where the brightest ray from the moving point (the shaft's
echo, ``needle_motion_maps.ray_direction``) may follow a fascia or muscle striation
instead. The centroids are kept as exponentially decayed moments (one weight per frame,
``path_decay`` per frame), and the path gives a direction once it is long and thin
enough (``path_min_mm``, ``path_ratio``)."""

from __future__ import annotations

import math

import numpy as np


class MotionPath:
    """Decayed moments of the moving regions' centroids (working-grid pixels)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._m = np.zeros(6)  # Σw, Σx, Σy, Σxx, Σxy, Σyy
        self.n = 0

    def add(self, c: np.ndarray, decay: float) -> None:
        """One frame's moving centroid ``c`` (col, row)."""
        x, y = float(c[0]), float(c[1])
        self._m = self._m * decay + np.array([1.0, x, y, x * x, x * y, y * y])
        self.n += 1

    def axis(self, px_mm: float, prm) -> np.ndarray | None:
        """The path's unit direction (pointing deeper), or None while it is shorter than
        ``path_min_mm`` (its extent along the axis, √12·σ of a uniform spread), less than
        ``path_ratio`` times longer than wide, or made of fewer than ``path_frames``
        frames."""
        if self.n < prm.path_frames or prm.path_min_mm <= 0:
            return None
        w, sx, sy, sxx, sxy, syy = (float(v) for v in self._m)
        mx, my = sx / w, sy / w
        a, b, c = sxx / w - mx * mx, sxy / w - mx * my, syy / w - my * my  # covariance
        r = math.hypot(0.5 * (a - c), b)
        hi, lo = max(0.5 * (a + c) + r, 0.0), max(0.5 * (a + c) - r, 0.0)
        if math.sqrt(12.0 * hi) * px_mm < prm.path_min_mm or \
                hi < prm.path_ratio ** 2 * max(lo, 1e-12):
            return None
        t = 0.5 * math.atan2(2.0 * b, a - c)  # the major axis
        v = np.array([math.cos(t), math.sin(t)])
        return v if v[1] >= 0 else -v


__all__ = ["MotionPath"]
