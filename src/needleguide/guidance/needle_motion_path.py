"""The needle's path from where its motion was, frame after frame (for
``guidance.needle_motion``).

Every moving region the needle causes lies on its line: the tissue pushed ahead of an
advancing tip, the tissue dragged along a jiggled shaft. Their centroids over the frames
since the needle was found therefore trace the line, even where the shaft itself is too
steep or too dark to see — where the brightest ray from the moving point (the shaft's
echo, ``needle_motion_rays.ray_direction``) may follow a fascia or muscle striation
instead. The centroids are kept as exponentially decayed moments (one weight per frame,
``path_decay`` per frame), and the path gives a direction once it is long and thin
enough (``path_min_mm``, ``path_ratio``). Motion is also checked against the needle's
line found before (:func:`against_line`): on it, the needle going on; off it, something
else."""

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


def along_across(p: np.ndarray, axis, px_mm: float) -> tuple[float, float]:
    """Grid point ``p`` against the needle's ``axis`` (its last tip on its line, unit
    direction; working grid): (mm along it from that tip, mm across it)."""
    p1, u = axis
    rel = np.asarray(p, float) - p1
    return float(rel @ u) * px_mm, abs(float(rel[1] * u[0] - rel[0] * u[1])) * px_mm


def against_line(axis, xs: np.ndarray, ys: np.ndarray, w: np.ndarray, px_mm: float, prm,
                 tip: np.ndarray | None = None):
    """A moving shaft (jiggle: its pixels ``xs``, ``ys``, z mass ``w``) or a far moving tip
    (``tip``: grid px) against the needle found before (``axis``: :func:`along_across`'s):
    None when the moving tip lies within ``keep_band_mm`` of the line and not behind the
    last tip (the needle advanced); ``"elsewhere"`` when the moving tip, or half of a
    shaft's motion, lies off the line; else the tip to keep: ``"last"``, or a shaft's
    motion's distal end on that line (grid px) when it lies beyond the last tip (the
    motion fades where the tissue is dark; the tip did not move back)."""
    p1, u = axis
    if tip is not None:
        along, across = along_across(tip, axis, px_mm)
        if across > prm.keep_band_mm:
            return "elsewhere"
        return None if along >= -prm.jump_mm else "last"
    rel = np.c_[xs - p1[0], ys - p1[1]]
    near = np.abs(rel @ np.array([-u[1], u[0]])) * px_mm <= prm.keep_band_mm
    if float(w[near].sum()) < 0.5 * float(w.sum()):
        return "elsewhere"
    strong = near & (w >= prm.tip_rel_kept * float(w.max()))
    if not strong.any():
        return "last"
    end = float(np.quantile(rel[strong] @ u, 0.95)) - prm.edge_bias_mm / px_mm
    return "last" if end <= 0.0 else p1 + u * end


__all__ = ["MotionPath", "against_line", "along_across"]
