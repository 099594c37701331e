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
the spread per unit iodine (:mod:`.contrast_shape`). Rules (thresholds in
:class:`ContrastParams`, tuned on seeds 0–23 of the evaluation;
docs/guidance_levels_contrast.md):

* intravascular alarm, whichever fires first:
  - *shape* (live: ``shape_frames_live`` consecutive frames, DSA: one): the main region
    is thin and far-reaching for the iodine it holds (spread ratio ≥
    ``vessel_spread_ratio`` while the effective area ≤ ``vessel_max_area_mm2``), or
    reaches very far whatever it holds (≥ ``plexus_spread_ratio``, a venous network) — a
    vessel fills along its lumen within a transit time, a collection stays compact;
  - *saturation* (live): the ROI-integrated signal rises then levels off (likelihood ratio
    ≥ ``alarm_llr``, :mod:`.contrast_timecourse`) — in a vessel the inflow is carried
    away (in = out), outside one iodine accumulates at the injection rate;
  - *plateau* (DSA): the thresholded signal's slope falls below half its peak;
  arterial or venous: venous when the spread ratio ever reaches ``venous_spread_ratio``
  (the plexus runs along the canal), else arterial;
* intra-articular: compact, small (area ≤ ``articular_area_mm2``) outline;
* epidural: a squat spread (vertical / horizontal extent < ``epidural_aspect``) over the
  interlaminar space;
* intrathecal: a tall column (vertical extent ≥ ``intrathecal_height_mm``) layering in
  the thecal sac;
* soft tissue: the rest (a persistent local collection).
On the AP view alone these extravascular classes overlap (experts: 51–64%).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from needleguide.frame import Frame
from needleguide.guidance.contrast_shape import spread_per_mass
from needleguide.guidance.contrast_timecourse import TimeCourse, saturation_llr

LABELS = ("intravascular_arterial", "intravascular_venous", "epidural", "intrathecal",
          "intra_articular", "soft_tissue")
INTRAVASCULAR = ("intravascular_arterial", "intravascular_venous")


@dataclass(frozen=True)
class ContrastParams:
    """Thresholds of the pattern rules (*assumptions*, tuned on seeds < 1000).

    z_threshold / z_seed: hysteresis thresholds (robust noise σ of the subtraction): a
    region above ``z_threshold`` is kept if it holds a pixel above ``z_seed``; smooth_mm:
    Gaussian σ (mm at the detector; 1.5 px at 256²) before thresholding; min_area_mm2:
    smallest opacified region kept;
    alarm_llr: live: the intravascular alarm fires at the first frame whose log-likelihood
    ratio saturation : accumulation of the ROI-integrated signal
    (:mod:`needleguide.guidance.contrast_timecourse`) reaches this value;
    min_frames: frames after the fitted start the ratio needs;
    venous_spread_ratio: an intravascular pattern whose spread ratio ever reaches this is
    venous (the epidural plexus: a network running along the canal), else arterial (one
    segmental artery and its branches, thin and short);
    roi_dilate_mm: margin of the integration region around everything opacified;
    temporal_filter: live: weight of the newest pulse in the fluoroscope's recursive filter
    (a console setting; read from ``settings['temporal_filter']`` when the frames carry it,
    else this value, the simulated C-arm's default);
    DSA (few frames, 2–6 /s) alarms instead on the plateau of the thresholded signal: its
    slope over the latest ``washout_window_s`` below ``plateau_ratio`` of its earlier peak,
    ≥ ``washout_min_s`` after the contrast is first seen.
    """

    z_threshold: float = 3.0
    z_seed: float = 7.0
    smooth_mm: float = 1.76
    min_area_mm2: float = 15.0
    vessel_spread_ratio: float = 0.5
    vessel_max_area_mm2: float = 200.0
    plexus_spread_ratio: float = 0.9
    shape_frames_live: int = 2
    alarm_llr: float = 40.0
    min_frames: int = 3
    venous_spread_ratio: float = 0.87
    roi_dilate_mm: float = 18.0
    temporal_filter: float = 0.3
    washout_window_s: float = 0.25
    washout_min_s: float = 0.3
    plateau_ratio: float = 0.5
    intrathecal_height_mm: float = 78.0
    epidural_aspect: float = 2.05
    articular_area_mm2: float = 700.0
    live_average: int = 1


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
    spread_ratio: float = float("nan")
    eff_area_mm2: float = 0.0
    llr: float = 0.0


@dataclass
class ContrastResult:
    """Pattern label, its confidence, the alarm time (s, frame clock; None = no alarm),
    the time contrast was first seen, the opacified mask of the last frame, the per-frame
    features, the largest saturation likelihood ratio, the cue that fired the alarm
    ('shape', 'saturation', 'plateau'; '' = none) and the opacified mask at the alarm."""

    label: str
    confidence: float
    alarm_time_s: float | None
    arrival_time_s: float | None
    mask: np.ndarray | None = None
    features: list[FrameFeatures] = field(default_factory=list)
    evidence_llr: float = 0.0
    alarm_cause: str = ""
    alarm_mask: np.ndarray | None = None

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


def before_map(frames: list[Frame], n_mask: int) -> np.ndarray:
    """Live: the contrast map of the last pre-injection frame (mask − that frame, in the
    same sign convention as :func:`opacification`)."""
    sign = 1.0 if frames[0].settings.get("display", "white-bone") == "black-bone" else -1.0
    stack = np.stack([np.asarray(f.pixels, np.float32) for f in frames[:n_mask]])
    return sign * (stack.mean(axis=0) - stack[-1])


def _noise_sigma(img: np.ndarray) -> float:
    """Robust σ of a smooth-subtracted map (median absolute deviation)."""
    v = img[::2, ::2]
    med = float(np.median(v))
    return 1.4826 * float(np.median(np.abs(v - med))) + 1e-6


def frame_features(cmap: np.ndarray, pixel_mm: float, t_s: float, p: ContrastParams,
                   origin: tuple[float, float] | None = None
                   ) -> tuple[FrameFeatures, np.ndarray]:
    """Features and opacified mask of one contrast map."""
    sm = cv2.GaussianBlur(cmap.astype(np.float32), (0, 0), max(p.smooth_mm / pixel_mm, 0.5))
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
    f.spread_ratio, f.eff_area_mm2 = spread_per_mass(sm - float(np.median(sm[::2, ::2])), m,
                                                     pixel_mm)
    return f, m


def classify_sequence(frames: list[Frame], mode: str = "live", n_mask: int = 3,
                      params: ContrastParams | None = None, record_all: bool = False
                      ) -> ContrastResult:
    """Pattern, confidence and intravascular alarm time of an FL contrast sequence.

    frames: Frames (no truth needed), in time order; live: the first ``n_mask`` are
    pre-injection; dsa: subtracted frames (the mask frame may lead). ``record_all``: keep
    computing the evidence (``features[i].llr``) after the alarm (for tuning and plots).
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
    llr_max = 0.0
    run = 0
    cause = ""
    alarm_mask = None
    a = float(frames[-1].settings.get("temporal_filter", p.temporal_filter)) \
        if mode == "live" else 1.0
    tc = TimeCourse(pixel_mm, p.roi_dilate_mm, recursive_weight=a,
                    before=before_map(frames, n_mask) if mode == "live" else None)
    # last frame known to precede the injection (the start is searched after it)
    t0 = float(frames[n_mask - 1].time_s) if mode == "live" else float(times[0])
    lam, need = p.alarm_llr, p.min_frames
    for cmap, t in zip(maps, times, strict=True):
        f, m = frame_features(cmap, pixel_mm, t, p, origin)
        feats.append(f)
        tc.add(cmap, t, m)
        last_mask = m
        if f.area_mm2 <= 0 and origin is None:
            continue
        if origin is None:
            rr, cc = np.nonzero(m)
            w = cmap[rr, cc]
            k = int(np.argmax(w))
            origin = (float(rr[k]), float(cc[k]))
            arrival = t
            f.spread_mm = float(np.hypot(rr - origin[0], cc - origin[1]).max() * pixel_mm)
        run = run + 1 if _vessel_shape(f, p) else 0
        if alarm is None and run >= (p.shape_frames_live if mode == "live" else 1):
            alarm, cause, alarm_mask = t, "shape", m
        if mode == "dsa":
            if alarm is None and _plateau(feats, arrival, p):
                alarm, cause, alarm_mask = t, "plateau", m
        elif alarm is None or record_all:
            tt, sig, noise = tc.signal()
            llr, _ = saturation_llr(tt, sig, noise, t0, min_frames=need)
            llr_max = max(llr_max, llr)
            f.llr = llr
            if llr >= lam and alarm is None:
                alarm, cause, alarm_mask = t, "saturation", m
    label, conf = _final_label(feats, arrival, alarm, p)
    return ContrastResult(label, conf, alarm, arrival, last_mask, feats, llr_max, cause,
                          alarm_mask)


def _vessel_shape(f: FrameFeatures, p: ContrastParams) -> bool:
    """A thin far-reaching opacification for little iodine (a vessel filled at once), or a
    network reaching far whatever its iodine (a plexus); see :mod:`.contrast_shape`."""
    r = f.spread_ratio
    if not r == r:  # nan: nothing opacified
        return False
    return (r >= p.vessel_spread_ratio and f.eff_area_mm2 <= p.vessel_max_area_mm2) or \
        r >= p.plexus_spread_ratio


def _plateau(feats: list[FrameFeatures], arrival: float | None, p: ContrastParams) -> bool:
    """DSA: the opacified signal stops growing (slope over the latest window below
    ``plateau_ratio`` of the steepest earlier one) while contrast keeps arriving."""
    cur = feats[-1]
    if cur.area_mm2 <= 0 or arrival is None or cur.time_s - arrival < p.washout_min_s:
        return False
    seen = [f for f in feats if f.area_mm2 > 0]
    if len(seen) < 3:
        return False
    t = np.array([f.time_s for f in seen])
    s = np.array([f.signal for f in seen])
    m = max(1, int(round(p.washout_window_s / max(float(np.median(np.diff(t))), 1e-6))))
    if len(seen) < m + 2:
        return False
    slopes = (s[m:] - s[:-m]) / (t[m:] - t[:-m])
    peak = float(slopes[:-1].max())
    return peak > 0 and float(slopes[-1]) < p.plateau_ratio * peak


def _final_label(feats: list[FrameFeatures], arrival: float | None, alarm: float | None,
                 p: ContrastParams) -> tuple[str, float]:
    seen = [f for f in feats if f.area_mm2 > 0]
    if not seen:
        return "soft_tissue", 0.2
    if alarm is not None:
        ratios = [f.spread_ratio for f in seen if f.spread_ratio == f.spread_ratio]
        if ratios and max(ratios) >= p.venous_spread_ratio:
            return "intravascular_venous", 0.75
        return "intravascular_arterial", 0.75
    big = max(seen, key=lambda f: f.signal)
    if big.area_mm2 <= p.articular_area_mm2:
        return "intra_articular", 0.65
    if big.height_mm < p.epidural_aspect * big.breadth_mm:
        return "epidural", 0.6
    if big.height_mm >= p.intrathecal_height_mm:
        return "intrathecal", 0.6
    return "soft_tissue", 0.5


def draw_contrast(frame: Frame, result: ContrastResult) -> np.ndarray:
    """RGB uint8 overlay: the opacified outline (red; the one at the alarm when ``frame`` is
    the alarm frame), the pattern label and, on frames at or after the alarm, a red
    "INTRAVASCULAR" banner with the alarm time, the delay after the contrast was first
    seen and the cue that fired (shape: thin far-reaching; saturation; plateau)."""
    g = np.asarray(frame.pixels, np.float32)
    g = g / 255.0 if g.max() > 1.5 else g
    img = cv2.cvtColor((np.clip(g, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    scale = max(1, 512 // img.shape[0])
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    alarm = result.alarm_time_s
    at_alarm = alarm is not None and abs(float(frame.time_s) - alarm) < 1e-6
    mask = result.alarm_mask if at_alarm and result.alarm_mask is not None else result.mask
    if mask is not None and mask.any():
        m = cv2.resize(mask.astype(np.uint8), (img.shape[1], img.shape[0]),
                       interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, (230, 40, 40), 1, cv2.LINE_AA)
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
