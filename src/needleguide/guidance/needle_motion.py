"""The ultrasound needle tip from motion (issue 16 part 4): what the sonographer watches.

A needle that advances drags and pushes the tissue around its tip; a needle jiggled in and
out drags the tissue along its whole shaft (``us/tissue_motion.py``). On a still probe the
speckle of still tissue stays (it belongs to the tissue), so the change between frames
shows where the needle is, even where its shaft is too steep to return an echo.
:class:`NeedleMotion` is fed the frames of one probe position in order (real time) and
reads only their pixels, spacing and time:

1. **Working grid**: the frame averaged over ``scale``² pixels; hand tremor removed by
   phase correlation with the previous frame (a whole-image shift of ``min_shift_px`` …
   ``max_shift_px``, summed over frames; smaller estimates are the estimator's scatter on
   a still probe and are ignored).
2. **Motion map** (``needle_motion_maps.motion_z``): the mean of the last ``average``
   frames (the receiver noise is new in every frame, the tissue's speckle is not) against
   the mean of as many frames ``lag`` frames earlier, for each of ``lags``: the local
   decorrelation 1 − ρ (``window_mm`` box) as a z score against still tissue of the same
   brightness and edge strength (median and MAD per band over the image: most of it is
   still); bands of receiver noise give 0, and so do black pixels (local mean ≤
   ``dark_floor``: a bone shadow's receiver noise flickers, but no echo moves there);
   the larger z of the lags.
3. **The moving region**: the connected set of z ≥ ``z_on`` with the most z mass; it must
   reach ``tip_z`` — or, once a needle is known, ``track_z`` where it lies on the
   needle's line (within ``keep_band_mm``) from ``jump_mm`` behind to ``track_ahead_mm``
   ahead of its last tip: the tip going on through tissue that moves less visibly.
   Elongated (≥ ``shape_min_mm``, aspect ≥ ``shape_aspect``): a jiggled shaft, its axis
   is the needle's — unless it runs within ``beam_tol_deg`` of the ultrasound beam there
   (``us_beams``, from the scanned area's borders): what changes along a beam under a
   moving needle is its shadow and reverberation tail, and an in-plane needle crosses the
   beams. Compact: an advancing tip; the needle's direction is the ray from it back
   toward the skin along which the echo is brightest against two parallel lines (the
   shaft is seen best in the shallow tissue; rays along the beam excluded), starting at
   the region's centroid or up to ``ray_shift_mm`` across from it inside the region
   when that ray is ``ray_shift_gain`` brighter (where the tissue on one side of the
   tip is dark, the centroid lies mm beside the shaft). Once the moving
   regions' centroids since the needle was found trace a path ≥ ``path_min_mm`` long
   (``needle_motion_path``: everything the needle moves lies on its line), a direction
   from the centroid (not a shifted one) more than ``path_tol_deg`` off that path is
   replaced by it (a steep shaft in muscle does not echo, and the brightest ray then
   follows a striation or fascia).
4. **Tip**: the motion's peak along the line less ``peak_bias_mm`` (advance: the tissue is
   pushed and dragged most at the tip), or the distal edge of a jiggled shaft's motion
   less ``edge_bias_mm``; moved to where the echo steps down (``needle_motion_step``, on
   the frames at full resolution): along the motion's line (``step_tip``, within
   −``step_back_mm`` … +``step_ahead_mm``, ≥ ``step_k`` σ), else on lines rocked
   ±``refine_deg`` and slid ±``refine_mm`` about it (``refined_step``, ≥ ``refine_k`` σ:
   the motion's line is off by a few degrees where the shaft is too steep to echo)
   (``tip_from`` ``step``, ``tip_visible``), else ``motion``.
5. **One needle**: the tips found at the echo's end give the needle's line
   (``needle_line``: the needle of a still probe stays on one line); the refined search
   rocks about it (±``line_mm`` across) and a tip found by motion alone is put on it;
   it too is turned to the motion's path when they differ by more than ``path_tol_deg``,
   unless the tips trace it (``traced_line``; the path then drifts with something else).
   Motion farther than ``jump_mm`` from the last tip, or a jiggled shaft, is checked
   against that line: an advancing tip on it is the needle gone on; on it a jiggled
   shaft keeps the last tip unless its motion reaches beyond it (``kept``: the motion
   fades where the tissue is dark); off it the motion is ignored (something else moved) —
   unless a tip keeps advancing off it: after ``reacquire_frames`` such frames since an
   advancing tip was last seen on it, the needle found before is dropped (its line came
   from something else) and the motion is taken afresh.
   A needle is first found (none known) only at a compact moving region whose motion
   spans ≤ ``acquire_max_mm`` along its line: the motion of a jiggled shaft, or of a long
   stretch of one, whose tip does not show lies in the shallow tissue (such first
   detections were 2–66 mm off). The tip moves at most ``max_tip_speed_mm_s``. A still
   needle keeps, for ``hold_frames`` frames, the last tip found at an advancing tip or
   at the echo's end (``held``), looked for again at the echo's end each frame (up to
   ``held_ahead_mm`` ahead: a needle may go on where the tissue is too dark to show
   motion; what is found becomes the held tip), once its motion was seen in
   ``confirm_frames`` frames (a lone flicker of motion is not held); then it is lost.
   From the ``held_off_frames``-th frame of a tip advancing off its line the held tip is
   no longer reported (it may not have been the needle) while that goes on.

6. **Shown**: the tip moved ``tip_smooth`` of the way to the one shown for the frame
   before, if the needle was found there (``needle_motion_step.smoothed``: each frame's
   tip has its own noise; the analyser goes on from the tips it found).

Reported as :class:`~needleguide.guidance.needle_types.NeedleDetection` (``extra``:
``tip_from`` step | motion | kept | held, ``motion_z``, ``moving_mm``, ``shaft_motion``,
``refined`` (the refined step's score), ``on_line``, ``tip_in_shadow`` (the line runs on
into black beyond the tip, ``needle_motion_step.dark_ahead``: not reported seen),
``tip_found_px``). The first ``max(lags) + average`` frames have no motion map.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from needleguide.frame import Frame
from needleguide.guidance.needle_lines import angle_between_deg
from needleguide.guidance.needle_motion_maps import (
    FullFrames,
    history_mean,
    line_profile,
    main_component,
    motion_z,
    tremor_shift,
)
from needleguide.guidance.needle_motion_params import MotionParams
from needleguide.guidance.needle_motion_path import MotionPath, against_line, along_across
from needleguide.guidance.needle_motion_rays import ray_direction
from needleguide.guidance.needle_motion_step import (
    moved_to,
    refined_detection,
    shadowed,
    shaft_direction,
    smoothed,
    speed_limited,
    step_tip,
    tip_fields,
    traced_line,
)
from needleguide.guidance.needle_types import NOT_FOUND, NeedleDetection
from needleguide.guidance.us_beams import ScannedArea


class NeedleMotion:
    """Real-time needle tip from the motion of a sequence of US frames of a still probe.

    ``update(frame)`` → :class:`NeedleDetection` for that frame (the frames of one probe
    position, in order; a change of image size or spacing starts afresh)."""

    def __init__(self, params: MotionParams | None = None):
        self.prm = params or MotionParams()
        self._key = None
        self._hist: deque = deque(maxlen=max(self.prm.lags) + self.prm.average)
        self._n = 0  # frames seen (the history's numbers)
        self._memo: dict = {}  # first frame's number -> unmoved mean and its box sums
        self.z: np.ndarray | None = None
        self._cur: np.ndarray | None = None
        self._now: np.ndarray | None = None  # the last frame, full resolution
        self._t: float | None = None
        self._full = FullFrames(self.prm.average)  # (their mean: once per frame)
        self._tips: deque = deque(maxlen=self.prm.line_points)
        self._line_memo: tuple | None = None  # (tips, needle_line of them)
        self._path = MotionPath()
        self._forget()  # (no needle yet)
        self._c = np.zeros(2)
        self._sp = 1.0
        self._area = ScannedArea(self.prm.beam_every)  # (working grid)

    # ---- working grid ----------------------------------------------------------------
    def _grid(self, frame: Frame) -> np.ndarray:
        p = frame.pixels
        if p.ndim == 3:
            p = cv2.cvtColor(np.ascontiguousarray(p[..., :3]), cv2.COLOR_RGB2GRAY)
        g = self._now = self._full.add(p)  # (0 … 1, full resolution)
        (h, w), sc = g.shape, self.prm.scale
        g = cv2.resize(g, (w // sc, h // sc), interpolation=cv2.INTER_AREA)
        self._area.add(g)
        return g

    def _mean(self, start: int, shift: np.ndarray) -> tuple[np.ndarray, int | None]:
        """The mean of ``average`` frames of the history from ``start`` (negative index),
        aligned to the newest frame, and its key in ``_memo`` (``history_mean``)."""
        return history_mean([self._hist[i] for i in range(start, start + self.prm.average)],
                            shift, self._memo)

    def reset(self) -> None:
        self._t = None
        for x in (self._area, self._hist, self._memo):
            x.clear()
        self._forget()

    def _forget(self) -> None:
        """The needle found before is lost (or was not the needle); ``_off``: advancing
        tips off the known needle since one was on it; ``_shown``: the tip shown last."""
        self._last, self._anchor, self._seen, self._held, self._off = NOT_FOUND, None, 0, 0, 0
        self._shown = None
        self._tips.clear()
        self._path.clear()

    def update(self, frame: Frame) -> NeedleDetection:
        """The needle of ``frame`` from the motion since the previous frames, its tip
        smoothed with the one shown for the frame before (``tip_smooth``)."""
        det = smoothed(self._find(frame), self._shown, self.prm.tip_smooth, frame)
        self._shown = det.tip_px if det.found else None
        return det

    def _find(self, frame: Frame) -> NeedleDetection:
        prm = self.prm
        g = self._grid(frame)
        self._sp = float(frame.spacing_mm[0])
        px_mm = self._sp * prm.scale
        key = (g.shape, round(px_mm, 6))
        if key != self._key:
            self.reset()
            self._key = key
        shift = np.zeros(2)
        if self._hist:
            shift = self._hist[-1][1] + tremor_shift(self._hist[-1][0], g, prm.max_shift_px,
                                                       prm.min_shift_px)
        self._n += 1
        self._hist.append((g, shift, self._n))
        m = prm.average
        for old in [q for q in self._memo if q <= self._n - self._hist.maxlen]:
            del self._memo[old]  # means of frames no longer in the history
        prevs = [self._mean(-lag - m, shift) for lag in prm.lags if len(self._hist) >= lag + m]
        if not prevs:
            self.z = None
            return NOT_FOUND
        self._cur, key = self._mean(-m, shift)
        z = self.z = motion_z([a for a, _ in prevs], self._cur, px_mm, prm, self._memo,
                              [q for _, q in prevs] + [key])  # (z kept for diagnostics)
        det = self._locate(frame, z, px_mm)
        if det.found:
            if self._last.found and self._t is not None:
                det = speed_limited(det, self._last.tip_px, float(frame.time_s) - self._t,
                                    frame, prm.max_tip_speed_mm_s)
            self._last, self._held, self._t = det, 0, float(frame.time_s)
            self._seen += 1
            self._path.add(self._c, prm.path_decay)
            # the tip a still needle keeps: the last one seen at the echo's end or at an
            # advancing tip (a jiggled shaft's motion places it less well)
            if not det.extra.get("shaft_motion", True) and det.extra.get("tip_from") in (
                    "step", "motion"):
                self._anchor = det
                if det.extra["tip_from"] == "step":
                    _, u = shaft_direction(*det.shaft_px, 1e-9) or (0.0, np.zeros(2))
                    c, d = det.shaft_px[1]
                    self._tips.append((c, d, float(u[0]), float(u[1])))
            return shadowed(det, self._now, self._sp, prm)
        # a still needle is held once its motion was seen in ``confirm_frames`` frames (a
        # lone flicker of motion is not held)
        if self._last.found and self._held < prm.hold_frames and \
                self._seen >= prm.confirm_frames:
            self._held += 1
            base = self._anchor if self._anchor is not None else self._last
            held = NeedleDetection(**{**base.__dict__, "extra": {
                **base.extra, "tip_from": "held", "held_frames": self._held},
                "confidence": base.confidence * 0.98 ** self._held})
            held = self._refined(held, frame)
            if "refined" in held.extra:
                self._anchor = held  # the echo's end of a still (or slowly moving) needle
            if 0 < prm.held_off_frames <= self._off:
                return NOT_FOUND  # a tip advancing off its line: the held one is in doubt
            return shadowed(held, self._now, self._sp, prm)
        self._forget()  # the needle is lost
        return det

    # ---- line and tip ----------------------------------------------------------------
    def _locate(self, frame: Frame, z: np.ndarray, px_mm: float) -> NeedleDetection:
        prm = self.prm
        axis = self._needle_axis() if self._seen >= prm.confirm_frames else None
        comp = main_component(z, px_mm, prm, None if axis is None else prm.track_z)
        if comp is None:
            return NOT_FOUND
        ys, xs, w, elongated = comp
        c = np.array([float(w @ xs), float(w @ ys)]) / float(w.sum())
        if float(w.max()) < prm.tip_z:
            # weak motion: only the known needle's tip going on along its line
            along, across = along_across(c, axis, px_mm)
            if across > prm.keep_band_mm or not -prm.jump_mm <= along <= prm.track_ahead_mm:
                return NOT_FOUND
            u, elongated, at = axis[1], None, c
        else:
            beam = self._beam(c)
            if elongated is not None and self._along_beam(elongated, beam):
                elongated = None  # the change under a moving needle: its shadow, its tail
            ray = None if elongated is not None else \
                ray_direction(self._cur, c, px_mm, prm, beam, z)
            u, at = (elongated, c) if ray is None else ray
            if u is None:
                return NOT_FOUND
            if u[1] < 0:
                u = -u  # the needle points deeper
            v = self._path.axis(px_mm, prm)  # where its motion has been (needle_motion_path)
            if v is not None and angle_between_deg(u, v) > prm.path_tol_deg and \
                    not self._along_beam(v, beam) and np.array_equal(at, c):
                u = v  # (a shifted ray's echo outshone the centroid's: kept)
        self._c = c  # the moving region's centroid (its path); the line runs through ``at``
        far = self._far(c, px_mm)
        c = at
        ang = np.degrees(np.arctan2(abs(u[1]), abs(u[0])))
        if not (prm.min_angle_deg <= ang <= prm.max_angle_deg):
            return NOT_FOUND
        s, prof = line_profile(z, c, u, px_mm, prm.band_mm)
        if prof.size == 0:
            return NOT_FOUND
        lz = np.log1p(prof)
        k = int(np.argmax(lz))
        lo, hi = k, k
        while lo > 0 and lz[lo - 1] >= prm.edge_rel * lz[k]:
            lo -= 1
        while hi + 1 < lz.size and lz[hi + 1] >= prm.edge_rel * lz[k]:
            hi += 1
        if prm.acquire_max_mm > 0 and not self._last.found and (
                elongated is not None or float(s[hi] - s[lo]) * px_mm > prm.acquire_max_mm):
            return NOT_FOUND  # a needle is first found at an advancing tip only
        # the motion's tip: its peak (advance: the tissue pushed and dragged most at the
        # tip) or, for a jiggled shaft, its distal edge; each less its bias (tuning seeds)
        if elongated is None:
            tip_s, src = float(s[k]) - prm.peak_bias_mm / px_mm, "motion"
        else:
            tip_s, src = float(s[hi]) - prm.edge_bias_mm / px_mm, "motion"
        zpk = float(prof[k])
        full = self._to_frame
        tip_px = full(c + u * tip_s)
        prox_px = full(c + u * min(float(s[lo]), tip_s - prm.min_trail_mm / px_mm))
        angle = float(np.degrees(np.arctan2(-u[1], u[0])) % 180.0)
        step = None
        if prm.step_k > 0 and elongated is None and not far:
            step = step_tip(self._full.mean(), c, u, tip_s, px_mm, prm)
        if step is not None:
            tip_px, src = full(c + u * step), "step"
        conf = float(1.0 / (1.0 + np.exp(-(np.log(zpk) - np.log(prm.tip_z)) * 2.0)))
        det = NeedleDetection(True, **tip_fields(frame, tip_px),
                              shaft_px=(prox_px, tip_px), angle_deg=angle,
                              confidence=conf, score=zpk,
                              extra={"tip_from": src, "motion_z": zpk,
                                     "moving_mm": float(s[hi] - s[lo]) * px_mm,
                                     "shaft_motion": elongated is not None},
                              tip_visible=src == "step")
        if src == "motion" and (elongated is not None or far):
            known = self._known_needle(xs, ys, w, px_mm,
                                       None if elongated is not None else c + u * tip_s)
            if known == "elsewhere":
                if elongated is None:
                    self._off += 1
                if not 0 < prm.reacquire_frames <= self._off:
                    return NOT_FOUND  # something else moved: keep the needle found before
                self._forget()  # a tip kept advancing there: the needle before was not it
                return self._locate(frame, z, px_mm)
            if known is not None:
                det = moved_to(det, frame, known, prox_px, {"tip_from": "kept"})
        if elongated is None:
            self._off = 0
        return det if src == "step" else self._refined(det, frame)

    def _refined(self, det: NeedleDetection, frame: Frame) -> NeedleDetection:
        """``det`` with its tip at the echo's end around it (``refined_detection``)."""
        return refined_detection(det, self._full.mean(), self._line(), frame, self.prm)

    def _line(self):
        """``needle_line``, turned to the motion's path when they differ by more than
        ``path_tol_deg`` (a shaft that does not show), unless the tips trace the line."""
        key = (tuple(self._tips), self._sp)  # (the same tips: the same line, kept)
        if self._line_memo is None or self._line_memo[0] != key:
            self._line_memo = (key, traced_line(self._tips, self._sp, self.prm))
        m = self._line_memo[1]
        line = None if m is None else (m[0].copy(), m[1].copy())
        v = self._path.axis(self._sp * self.prm.scale, self.prm)
        if line is None or v is None or m[2] or \
                angle_between_deg(line[1], v) <= self.prm.path_tol_deg:
            return line
        return line[0], v

    def _far(self, c: np.ndarray, px_mm: float) -> bool:
        """The moving point lies farther than ``jump_mm`` from the last tip."""
        last = self._last
        return bool(last.found and last.tip_px is not None and float(np.hypot(
            *(self._to_grid(last.tip_px) - c))) * px_mm > self.prm.jump_mm)

    def _known_needle(self, xs: np.ndarray, ys: np.ndarray, w: np.ndarray, px_mm: float,
                      tip: np.ndarray | None = None):
        """A moving shaft or a far moving tip against the needle found before
        (``needle_motion_path.against_line``; None when there is none or it is older than
        ``hold_frames``): None, ``"elsewhere"``, or the tip it keeps (frame pixels)."""
        axis = self._needle_axis()
        r = None if axis is None else against_line(axis, xs, ys, w, px_mm, self.prm, tip)
        if r is None or isinstance(r, str) and r == "elsewhere":
            return r
        return self._last.tip_px if isinstance(r, str) else self._to_frame(r)

    def _needle_axis(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The needle found before: (its last tip on its line, the line's unit direction;
        working grid), from ``needle_line`` else its last shaft; None when there is none
        or it is older than ``hold_frames``."""
        last = self._last
        if not last.found or last.shaft_px is None or self._held > self.prm.hold_frames:
            return None
        line = self._line()
        if line is not None:  # the last tip on the needle's line
            lc, u = line
            return self._to_grid(lc + u * float((np.asarray(last.tip_px) - lc) @ u)), u
        p1 = self._to_grid(last.tip_px)
        r = shaft_direction(self._to_grid(last.shaft_px[0]), p1)
        return None if r is None else (p1, r[1])

    def _beam(self, c: np.ndarray) -> np.ndarray | None:
        """The beam through grid point ``c`` (``us_beams``), or None."""
        return self._area.beam(c[0], c[1]) if self.prm.beam_tol_deg > 0 else None

    def _along_beam(self, u: np.ndarray, beam: np.ndarray | None) -> bool:
        return beam is not None and angle_between_deg(u, beam) < self.prm.beam_tol_deg

    def _to_frame(self, p) -> tuple[float, float]:
        """Working-grid pixel (col, row) -> frame pixel."""
        sc = self.prm.scale
        return (float(p[0] + 0.5) * sc - 0.5, float(p[1] + 0.5) * sc - 0.5)

    def _to_grid(self, p) -> np.ndarray:
        """Frame pixel (col, row) -> working-grid pixel."""
        return (np.asarray(p, float) + 0.5) / self.prm.scale - 0.5


__all__ = ["MotionParams", "NeedleMotion"]
