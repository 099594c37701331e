"""Needle tracking over a frame sequence: a constant-velocity Kalman filter on the tip
(col, row in pixels) and the shaft angle (deg), with a Mahalanobis gate, and the
prediction handed to :func:`detect_needle` as the prior (a search band around the
predicted shaft: faster, and distractors away from the needle are ignored)."""

from __future__ import annotations

import dataclasses

import numpy as np

from needleguide.frame import Frame
from needleguide.guidance.needle import NeedleDetection, NeedleParams, detect_needle

GATE_CHI2 = 16.27  # χ²(3 dof) at p = 0.001


class NeedleTracker:
    """Kalman filter on state [c, r, θ, dc, dr, dθ] (pixels, degrees, per second).

    process_px: tip acceleration noise (px/s²); process_deg: angular acceleration noise
    (deg/s²); meas_px / meas_deg: detection noise (px, deg); lost_after: frames without
    an accepted detection before the track is dropped and a full-frame search resumes."""

    def __init__(self, process_px: float = 200.0, process_deg: float = 20.0,
                 meas_px: float = 2.0, meas_deg: float = 1.5, lost_after: int = 5,
                 params: NeedleParams | None = None):
        self.q = np.array([process_px, process_px, process_deg], float)
        self.r = np.diag([meas_px ** 2, meas_px ** 2, meas_deg ** 2])
        self.lost_after = int(lost_after)
        self.params = params
        self.x: np.ndarray | None = None
        self.P: np.ndarray | None = None
        self.t: float | None = None
        self.misses = 0
        self.last: NeedleDetection | None = None

    def reset(self) -> None:
        self.x = self.P = self.t = self.last = None
        self.misses = 0

    def _predict(self, dt: float) -> None:
        F = np.eye(6)
        F[:3, 3:] = np.eye(3) * dt
        G = np.vstack([np.eye(3) * 0.5 * dt * dt, np.eye(3) * dt])
        Q = G @ np.diag(self.q ** 2) @ G.T
        self.x = F @ self.x
        self.P = F @ self.P @ F.T + Q

    def update(self, frame: Frame) -> NeedleDetection:
        """Track the needle in the next frame; returns the filtered detection (tip and
        angle from the filter; ``extra['raw']`` holds the detector's own result)."""
        if self.x is not None and self.t is not None:
            self._predict(max(frame.time_s - self.t, 1e-3))
        self.t = frame.time_s
        prior = self._prior()
        det = detect_needle(frame, prior=prior, params=self.params)
        if prior is not None and not det.found:  # lost in the band: search everywhere
            det = detect_needle(frame, params=self.params)
        accepted = det.found and self._gate(det)
        if accepted:
            z = np.array([det.tip_px[0], det.tip_px[1], det.angle_deg])
            if self.x is None:
                self.x = np.r_[z, 0.0, 0.0, 0.0]
                self.P = np.diag([4.0, 4.0, 4.0, 400.0, 400.0, 100.0])
            else:
                H = np.hstack([np.eye(3), np.zeros((3, 3))])
                y = z - H @ self.x
                y[2] = (y[2] + 90.0) % 180.0 - 90.0
                S = H @ self.P @ H.T + self.r
                K = self.P @ H.T @ np.linalg.inv(S)
                self.x = self.x + K @ y
                self.x[2] %= 180.0
                self.P = (np.eye(6) - K @ H) @ self.P
            self.misses = 0
        else:
            self.misses += 1
            if self.misses > self.lost_after:
                self.reset()
                return dataclasses.replace(det, found=False)
        if self.x is None:
            return det
        out = self._as_detection(frame, det)
        self.last = out
        return out

    def _gate(self, det: NeedleDetection) -> bool:
        if self.x is None:
            return True
        z = np.array([det.tip_px[0], det.tip_px[1], det.angle_deg])
        y = z - self.x[:3]
        y[2] = (y[2] + 90.0) % 180.0 - 90.0
        S = self.P[:3, :3] + self.r
        return float(y @ np.linalg.solve(S, y)) <= GATE_CHI2 or self.misses >= self.lost_after

    def _prior(self) -> NeedleDetection | None:
        if self.x is None or self.last is None or self.last.shaft_px is None:
            return None
        c, r, a = self.x[:3]
        (c0, r0), (c1, r1) = self.last.shaft_px
        length = float(np.hypot(c1 - c0, r1 - r0))
        u = np.array([np.cos(np.radians(a)), -np.sin(np.radians(a))])
        if u @ np.array([c1 - c0, r1 - r0]) < 0:
            u = -u
        tail = (float(c - u[0] * length), float(r - u[1] * length))
        return NeedleDetection(True, tip_px=(float(c), float(r)),
                               shaft_px=(tail, (float(c), float(r))), angle_deg=float(a))

    def _as_detection(self, frame: Frame, det: NeedleDetection) -> NeedleDetection:
        c, r, a = (float(v) for v in self.x[:3])
        tail = det.shaft_px[0] if det.shaft_px is not None else (c, r)
        found = det.found or self.misses <= self.lost_after
        return NeedleDetection(
            found=bool(found), tip_px=(c, r),
            tip_image_mm=(c * frame.spacing_mm[1], r * frame.spacing_mm[0]),
            tip_patient_mm=tuple(float(v) for v in frame.pixel_to_patient(c, r)),
            shaft_px=(tail, (c, r)), angle_deg=a % 180.0,
            confidence=det.confidence if det.found else det.confidence * 0.5,
            score=det.score, extra={"raw": det, "misses": self.misses},
            tip_visible=bool(det.found and det.tip_visible))


def track(frames, params: NeedleParams | None = None) -> list[NeedleDetection]:
    """Run a fresh :class:`NeedleTracker` over ``frames``; one detection per frame."""
    tr = NeedleTracker(params=params)
    return [tr.update(f) for f in frames]
