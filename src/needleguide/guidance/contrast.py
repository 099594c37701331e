"""Contrast-pattern analyser: classify where injected contrast went, and raise an
intravascular alarm as early as possible, from fluoroscopy pixels only.

Input: an FL sequence (Frames without truth). ``mode='live'``: pulsed fluoroscopy; the first
``n_mask`` frames (before the injection starts) are averaged into a mask and every later
frame is subtracted from it (black- or white-bone display read from ``settings['display']``).
``mode='dsa'``: subtracted DSA frames (``0.5 + Δlog/(2·window)``; the unsubtracted mask
frame, ``settings['dsa_role'] == 'mask'``, is skipped).

Per frame the opacification map (contrast darkening, robust-noise normalised) is
thresholded into the opacified region; features: area (mm², at the detector), integrated
signal, skeleton length and mean width (mm), spread from the first opacified point, and
their growth over time. Rules (thresholds in :class:`ContrastParams`, tuned on seeds 0–2
of the evaluation; docs/guidance_levels_contrast.md):

* intravascular: the opacified signal stops growing (or falls) while the injection goes
  on — in a vessel the inflow is carried away (in = out, washout), outside one iodine
  accumulates at the injection rate; arterial if the plateau comes within
  ``arterial_plateau_s`` of arrival (fast flow), else venous;
* intra-articular: compact, small (area ≤ ``articular_area_mm2``) outline;
* epidural: a squat spread (vertical / horizontal extent < ``epidural_aspect``) over the
  interlaminar space;
* intrathecal: a tall column (vertical extent ≥ ``intrathecal_height_mm``) layering in
  the thecal sac;
* soft tissue: the rest (a persistent local collection).
On the AP view alone these extravascular classes overlap (experts: 51–64%); the
intravascular decision rests on the time course, not on the shape.

The alarm fires at the first frame whose running evidence says intravascular.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from needleguide.frame import Frame

LABELS = ("intravascular_arterial", "intravascular_venous", "epidural", "intrathecal",
          "intra_articular", "soft_tissue")
INTRAVASCULAR = ("intravascular_arterial", "intravascular_venous")


@dataclass(frozen=True)
class ContrastParams:
    """Thresholds of the pattern rules (*assumptions*, tuned on seeds 0–2).

    z_threshold / z_seed: hysteresis thresholds (robust noise σ of the subtraction): a
    region above ``z_threshold`` is kept if it holds a pixel above ``z_seed``; smooth_px:
    Gaussian σ (px) before thresholding; min_area_mm2: smallest opacified region kept;
    plateau_ratio: intravascular when the signal slope over the latest ``washout_window_s``
    falls below this share of its earlier peak, ≥ ``washout_min_s`` after arrival;
    arterial_plateau_s: a plateau reached this soon after arrival is arterial, later venous;
    live_alarm_frames: consecutive live frames of plateau evidence before the alarm fires
    (noisy live subtraction; a DSA frame alone suffices).
    """

    z_threshold: float = 3.0
    z_seed: float = 7.0
    smooth_px: float = 1.5
    min_area_mm2: float = 15.0
    washout_window_s: float = 0.25
    washout_min_s: float = 0.3
    plateau_ratio: float = 0.5
    arterial_plateau_s: float = 0.9
    live_alarm_frames: int = 3
    intrathecal_height_mm: float = 78.0
    epidural_aspect: float = 2.05
    articular_area_mm2: float = 700.0
    live_average: int = 2


@dataclass
class FrameFeatures:
    """Opacification features of one frame (mm at the detector plane)."""

    time_s: float
    area_mm2: float = 0.0
    signal: float = 0.0
    length_mm: float = 0.0
    width_mm: float = 0.0
    height_mm: float = 0.0
    breadth_mm: float = 0.0
    spread_mm: float = 0.0


@dataclass
class ContrastResult:
    """Pattern label, its confidence, the alarm time (s, frame clock; None = no alarm),
    the opacified mask of the last frame and the per-frame features."""

    label: str
    confidence: float
    alarm_time_s: float | None
    arrival_time_s: float | None
    mask: np.ndarray | None = None
    features: list[FrameFeatures] = field(default_factory=list)

    @property
    def intravascular(self) -> bool:
        return self.label in INTRAVASCULAR


def opacification(frames: list[Frame], mode: str = "live", n_mask: int = 3,
                  live_average: int = 2) -> tuple[list[np.ndarray], list[float]]:
    """Contrast maps (positive where iodine darkens the beam, display units) and times."""
    if mode == "dsa":
        sub = [f for f in frames if f.settings.get("dsa_role") != "mask"]
        maps = [(0.5 - np.asarray(f.pixels, np.float32)) for f in sub]
        return maps, [float(f.time_s) for f in sub]
    if len(frames) <= n_mask:
        return [], []
    sign = 1.0 if frames[0].settings.get("display", "white-bone") == "black-bone" else -1.0
    stack = np.stack([np.asarray(f.pixels, np.float32) for f in frames])
    mask = stack[:n_mask].mean(axis=0)
    maps, times = [], []
    for k in range(n_mask, len(frames)):
        lo = max(n_mask, k - live_average + 1)
        cur = stack[lo:k + 1].mean(axis=0)
        maps.append(sign * (mask - cur))
        times.append(float(frames[k].time_s))
    return maps, times


def _noise_sigma(img: np.ndarray) -> float:
    """Robust σ of a smooth-subtracted map (median absolute deviation)."""
    v = img[::2, ::2]
    med = float(np.median(v))
    return 1.4826 * float(np.median(np.abs(v - med))) + 1e-6


def frame_features(cmap: np.ndarray, pixel_mm: float, t_s: float, p: ContrastParams,
                   origin: tuple[float, float] | None = None
                   ) -> tuple[FrameFeatures, np.ndarray]:
    """Features and opacified mask of one contrast map."""
    sm = cv2.GaussianBlur(cmap.astype(np.float32), (0, 0), p.smooth_px)
    sig = _noise_sigma(sm)
    z = (sm - float(np.median(sm[::2, ::2]))) / sig
    m = z > p.z_threshold
    lab, n = ndi.label(m)
    f = FrameFeatures(time_s=t_s)
    if n == 0:
        return f, m
    px2 = pixel_mm * pixel_mm
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:] * px2
    peak = ndi.maximum(z, lab, np.arange(1, n + 1))
    keep = np.flatnonzero((sizes >= p.min_area_mm2) & (np.asarray(peak) >= p.z_seed)) + 1
    if keep.size == 0:
        return f, np.zeros_like(m)
    m = np.isin(lab, keep)
    rr, cc = np.nonzero(m)
    f.area_mm2 = float(rr.size * px2)
    f.signal = float(np.clip(z[m], 0, None).sum() * sig * px2)
    f.height_mm = float((rr.max() - rr.min() + 1) * pixel_mm)
    f.breadth_mm = float((cc.max() - cc.min() + 1) * pixel_mm)
    sk = skeletonize(m)
    f.length_mm = float(max(sk.sum(), 1) * pixel_mm)
    f.width_mm = f.area_mm2 / max(f.length_mm, pixel_mm)
    if origin is not None:
        d = np.hypot(rr - origin[0], cc - origin[1])
        f.spread_mm = float(d.max() * pixel_mm)
    return f, m


def classify_sequence(frames: list[Frame], mode: str = "live", n_mask: int = 3,
                      params: ContrastParams | None = None) -> ContrastResult:
    """Pattern, confidence and intravascular alarm time of an FL contrast sequence.

    frames: Frames (no truth needed), in time order; live: the first ``n_mask`` are
    pre-injection; dsa: subtracted frames (the mask frame may lead).
    """
    p = params or ContrastParams()
    if mode not in ("live", "dsa"):
        raise ValueError(f"mode: {mode!r}; choose live or dsa")
    maps, times = opacification(frames, mode, n_mask, p.live_average)
    if not maps:
        return ContrastResult("soft_tissue", 0.0, None, None)
    f0 = next(f for f in frames if mode == "live" or f.settings.get("dsa_role") != "mask")
    pixel_mm = float(f0.spacing_mm[0])
    feats: list[FrameFeatures] = []
    origin = None
    arrival = None
    alarm = None
    last_mask = None
    run = 0
    first = None  # first frame with plateau evidence
    need = p.live_alarm_frames if mode == "live" else 1
    for cmap, t in zip(maps, times, strict=True):
        f, m = frame_features(cmap, pixel_mm, t, p, origin)
        feats.append(f)
        last_mask = m
        if f.area_mm2 <= 0:
            continue
        if origin is None:
            rr, cc = np.nonzero(m)
            w = cmap[rr, cc]
            k = int(np.argmax(w))
            origin = (float(rr[k]), float(cc[k]))
            arrival = t
            f.spread_mm = float(np.hypot(rr - origin[0], cc - origin[1]).max() * pixel_mm)
        if _intravascular_evidence(feats, arrival, p):
            first = t if first is None else first
            run += 1
            if alarm is None and run >= need:
                alarm = t
        else:
            run = 0
    label, conf = _final_label(feats, arrival, alarm, first, p)
    return ContrastResult(label, conf, alarm, arrival, last_mask, feats)


def _slope_ratio(feats: list[FrameFeatures], window_s: float) -> float | None:
    """Signal slope over the latest ``window_s`` divided by the steepest earlier slope over
    the same span (1 ≈ steady filling, → 0 plateau, < 0 washout); None if too early."""
    seen = [f for f in feats if f.area_mm2 > 0]
    if len(seen) < 3:
        return None
    t = np.array([f.time_s for f in seen])
    s = np.array([f.signal for f in seen])
    dt = np.median(np.diff(t))
    m = max(1, int(round(window_s / max(dt, 1e-6))))
    if len(seen) < m + 2:
        return None
    slopes = (s[m:] - s[:-m]) / (t[m:] - t[:-m])
    peak = float(slopes[:-1].max())
    if peak <= 0:
        return None
    return float(slopes[-1] / peak)


def _intravascular_evidence(feats: list[FrameFeatures], arrival: float | None,
                            p: ContrastParams) -> bool:
    """The opacification stops growing (or washes out) while contrast keeps arriving: in
    a vessel the inflow is carried away (in = out); outside one, iodine accumulates."""
    cur = feats[-1]
    if cur.area_mm2 <= 0 or arrival is None:
        return False
    if cur.time_s - arrival < p.washout_min_s:
        return False
    r = _slope_ratio(feats, p.washout_window_s)
    return r is not None and r < p.plateau_ratio


def _final_label(feats: list[FrameFeatures], arrival: float | None, alarm: float | None,
                 first: float | None, p: ContrastParams) -> tuple[str, float]:
    seen = [f for f in feats if f.area_mm2 > 0]
    if not seen:
        return "soft_tissue", 0.2
    if alarm is not None:
        if arrival is not None and first is not None and \
                first - arrival <= p.arterial_plateau_s:
            return "intravascular_arterial", 0.8
        return "intravascular_venous", 0.7
    big = max(seen, key=lambda f: f.signal)
    if big.area_mm2 <= p.articular_area_mm2:
        return "intra_articular", 0.65
    if big.height_mm < p.epidural_aspect * big.breadth_mm:
        return "epidural", 0.6
    if big.height_mm >= p.intrathecal_height_mm:
        return "intrathecal", 0.6
    return "soft_tissue", 0.5


def draw_contrast(frame: Frame, result: ContrastResult) -> np.ndarray:
    """RGB uint8 overlay: the opacified outline (red), the pattern label and, when the
    alarm fired, a red "INTRAVASCULAR" banner with the alarm time."""
    g = np.asarray(frame.pixels, np.float32)
    g = g / 255.0 if g.max() > 1.5 else g
    img = cv2.cvtColor((np.clip(g, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    scale = max(1, 512 // img.shape[0])
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    if result.mask is not None and result.mask.any():
        m = cv2.resize(result.mask.astype(np.uint8), (img.shape[1], img.shape[0]),
                       interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, (230, 40, 40), 1, cv2.LINE_AA)
    w = img.shape[1]
    if result.alarm_time_s is not None:
        cv2.rectangle(img, (0, 0), (w, 34), (200, 0, 0), -1)
        cv2.putText(img, f"INTRAVASCULAR  t={result.alarm_time_s:.2f} s", (8, 24),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(img, f"{result.label} ({result.confidence:.2f})", (8, img.shape[0] - 10),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 220, 60), 1, cv2.LINE_AA)
    return img
