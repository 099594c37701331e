"""Contrast-pattern analyser: classify where injected contrast went, and raise an
intravascular alarm as early as possible, from fluoroscopy pixels only.

Input: an FL sequence (Frames without truth). ``mode='live'``: pulsed fluoroscopy; the first
``n_mask`` frames (before the injection starts) are averaged into a mask and every later
frame is subtracted from it (black- or white-bone display read from ``settings['display']``);
the quantum noise map is measured on the same pre-injection frames
(:mod:`.contrast_features`). ``mode='dsa'``: subtracted DSA frames (``0.5 +
Δlog/(2·window)``; the unsubtracted mask frame, ``settings['dsa_role'] == 'mask'``, is
skipped); the noise map from the subtracted frames' fine detail.

Per frame the opacification z map is thresholded into the opacified region; features:
area (mm², at the detector), integrated signal, extents, spread from the first opacified
point, the spread per unit iodine of the main region and of all regions near the first
opacified point (:mod:`.contrast_shape`), and (live) the length of thin contrast ridges
beyond the opacified region (:mod:`.contrast_line`). Rules (thresholds in
:class:`ContrastParams`, tuned on seeds 0–71 of the evaluation;
docs/guidance_levels_contrast.md):

* intravascular alarm, whichever cue fires first (a vessel carries contrast away along
  its lumen within a transit time; outside one it accumulates where it is injected):
  - *shape* (live: ``shape_frames_live`` consecutive frames, DSA: one): the main region
    reaches far for the iodine it holds (spread ratio ≥ ``vessel_spread_ratio`` while the
    effective area ≤ ``vessel_max_area_mm2``), or very far whatever it holds
    (≥ ``plexus_spread_ratio``, a venous network);
  - *pieces* (live: ``pieces_frames_live`` consecutive frames, DSA: one): the same for
    all opacified regions whose centroid lies within ``near_reach_mm`` of the first
    opacified point — an artery seen as dense pieces where it runs along the beam, the
    faint segments between them lost in noise, stationary (they stay);
  - *lattice* (live, ``lattice_frames`` frames): ≥ ``lattice_min_mm`` of thin lines
    *inside* the opacified region (:mod:`.contrast_lattice`): the plexus's arms; live,
    the plexus branch of *shape* and *pieces* need ≥ ``lattice_gate_mm`` of them;
  - *ridge* (live, ``ridge_frames`` consecutive frames): ≥ ``ridge_min_mm`` of thin
    ridge (a line of contrast, 1–3 mm wide, found by integrating along it) beyond the
    opacified region (dilated by ``ridge_exclude_mm``) — a vein streaming away from a
    tip while little or nothing collects there;
  - *saturation* (live, a backstop): the ROI-integrated signal rises then levels off
    (likelihood ratio ≥ ``alarm_llr``, :mod:`.contrast_timecourse`; in = out);
  - *plateau* (DSA): the thresholded signal's slope falls to ≈ 0 (below
    ``plateau_ratio`` of its peak; in = out);
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

from needleguide.frame import Frame
from needleguide.guidance.contrast_draw import draw_contrast
from needleguide.guidance.contrast_features import (
    FrameFeatures,
    before_map,
    dsa_noise_grid,
    dsa_noise_map,
    first_point,
    frame_features,
    noise_map,
    opacification,
    unclipped,
)
from needleguide.guidance.contrast_kernels import dilate_mask
from needleguide.guidance.contrast_lattice import LatticeParams, lattice_length
from needleguide.guidance.contrast_line import LineParams, ridge_length
from needleguide.guidance.contrast_timecourse import TimeCourse, saturation_llr

LABELS = ("intravascular_arterial", "intravascular_venous", "epidural", "intrathecal",
          "intra_articular", "soft_tissue")
INTRAVASCULAR = ("intravascular_arterial", "intravascular_venous")


@dataclass(frozen=True)
class ContrastParams:
    """Thresholds of the pattern rules (*assumptions*, tuned on the evaluation's seeds
    0–71 at 256², 15 pulses/s, and retuned for the clinical live chain and the atlas
    patterns of issue 21 on seeds 0–23 (plexus_*, dsa_vessel_max_area_mm2, the
    extravascular classes; vessel_max_area_mm2 170 → 150, alarm_llr 150 → 300,
    ridge_frames 3 → 4: on seeds 0–23 of the new images the old values false-alarmed on
    7 of 96 negatives — early intrathecal columns (pieces, ridge) and facet and epidural
    fills whose time course levelled off (saturation); now 1); none on seeds ≥ 1000).
    Lengths and areas in mm / mm² at the detector plane.

    z_threshold / z_seed: hysteresis thresholds (robust noise σ of the subtraction): a
    region above ``z_threshold`` is kept if it holds a pixel above ``z_seed``; smooth_mm:
    Gaussian σ (1.5 px at 256²) before thresholding; min_area_mm2: smallest opacified
    region kept; local_noise / noise_map_mm: live: normalise by the quantum noise map of
    the pre-injection frames, smoothed over this σ (else one global σ);
    vessel_spread_ratio / vessel_max_area_mm2: the shape and pieces cues (spread ratio
    R_g²/A_eff at least this while A_eff is at most that; 170 mm² tuned on seeds 0–71:
    150 leaves 2 of 144 positives later than 1 s, 160–170 none with 1 false alarm in 288
    negatives, 180 4, 200 7);
    plexus_spread_ratio / plexus_max_width_mm: the shape cue whatever the iodine, on live
    frames only for thin lines (mean width, area / skeleton length, at most this: the
    plexus lattice is 6–8 mm wide at 256², an intrathecal column or a muscle cloud
    8–20 mm); dsa_vessel_max_area_mm2: the shape and pieces cues' A_eff bound on DSA
    (its frames are cleaner: the same vessel opacifies over a larger area); near_reach_mm:
    pieces cue,
    largest distance of a region's centroid from the first opacified point;
    shape_frames_live: consecutive live frames the shape cue needs;
    pieces_frames_live: consecutive live frames the pieces cue needs (issue 21 latency
    work, was ``shape_frames_live`` = 2): an artery's pieces are stationary and stay;
    the threshold's fragments of a growing collection (an early intrathecal column, a
    muscle streak) merge or flicker within 1–2 frames: on seeds 0–49 the 4 *pieces*
    false alarms fired 0.07–0.2 s after contrast was first seen; 3 frames removes 2 of
    them (soft tissue 32, intrathecal 39); 26 early intravascular alarms come one frame
    later (still 0.19–0.39 s after arrival), the latency p95 is unchanged;
    ridge_min_mm / ridge_frames / ridge_exclude_mm / line: the ridge cue (skeleton length
    of thin ridges beyond the opacified region dilated by ``ridge_exclude_mm``, in
    ``ridge_frames`` consecutive frames; detector geometry in :class:`LineParams`);
    alarm_llr: live backstop: log-likelihood ratio saturation : accumulation of the
    ROI-integrated signal (:mod:`needleguide.guidance.contrast_timecourse`); 150 is above
    every negative of seeds 0–71 (largest 95), and it fired first for none of their 144
    positives (at 40 it falsely alarmed on 4 of 288 negatives);
    min_frames: frames after the fitted start the ratio needs;
    venous_spread_ratio: an intravascular pattern whose spread ratio ever reaches this is
    venous (the epidural plexus: a network running along the canal), else arterial (one
    segmental artery and its branches, thin and short; 0.95 on seeds 0–23 of issue 21:
    live prefers 1.0, DSA 0.87);
    roi_dilate_mm: margin of the integration region around everything opacified;
    temporal_filter: live: weight of the newest pulse in the fluoroscope's recursive filter
    (a console setting; read from ``settings['temporal_filter']`` when the frames carry it,
    else this value); frames that record ``motion_detection`` (a motion-adaptive filter
    that passes a change at once) are not unfiltered;
    articular_area_mm2 / intrathecal_area_mm2 / epidural_aspect / intrathecal_height_mm:
    the extravascular classes from the strongest frame: small → intra-articular; large
    (the sac fills wide and long) → intrathecal; squat → epidural; tall → intrathecal;
    else soft tissue;
    DSA (few frames, 2–6 /s) alarms instead on the plateau of the thresholded signal: its
    slope over the latest ``washout_window_s`` below ``plateau_ratio`` of its earlier peak,
    ≥ ``washout_min_s`` after the contrast is first seen. In = out means the slope falls
    to ≈ 0 (vessels in the sessions' DSA test doses: ≤ 0.14 of the peak, washout < 0);
    an accumulating collection's signal only bends, its dense core clipped at the
    display's black (facet, foramen, caudal, cervical soft tissue: 0.29–0.9): 0.5 → 0.15
    (issue 21; at 0.5, 32 of 79 extravascular session test doses alarmed);
    lattice_min_mm / lattice_frames / lattice: *lattice* cue (live; None = off, and its
    gate with it), seeds 0–60: every negative ≤ 21 mm over 3 frames; lattice_gate_mm:
    live, the plexus branch of *shape* and *pieces* need this much (None = no gate);
    dsa_noise_block_mm: DSA: the z map is divided by a relative noise map measured on the
    subtracted frames themselves (median |fine detail| per block of this size, median
    over the frames seen so far: :func:`.contrast_features.dsa_noise_map`); None = one
    global σ (before issue 21: in cervical and caudal DSA noise blobs behind the spine
    were taken for the arrival and for a vessel's pieces).
    """

    z_threshold: float = 3.0
    z_seed: float = 7.0
    smooth_mm: float = 1.76
    min_area_mm2: float = 15.0
    vessel_spread_ratio: float = 0.5
    vessel_max_area_mm2: float = 150.0
    plexus_spread_ratio: float = 0.6
    plexus_max_width_mm: float | None = 9.0
    dsa_vessel_max_area_mm2: float = 400.0
    shape_frames_live: int = 2
    pieces_frames_live: int = 3
    alarm_llr: float = 300.0
    min_frames: int = 3
    venous_spread_ratio: float = 0.95
    roi_dilate_mm: float = 18.0
    temporal_filter: float = 0.3
    washout_window_s: float = 0.25
    washout_min_s: float = 0.3
    plateau_ratio: float = 0.15
    intrathecal_height_mm: float = 90.0
    intrathecal_area_mm2: float = 1700.0
    epidural_aspect: float = 2.3
    articular_area_mm2: float = 700.0
    live_average: int = 1
    local_noise: bool = True
    noise_map_mm: float = 10.0
    near_reach_mm: float = 30.0
    ridge_min_mm: float = 25.0
    ridge_frames: int = 4
    ridge_exclude_mm: float = 3.0
    line: LineParams = LineParams()
    dsa_noise_block_mm: float | None = 6.0
    lattice_min_mm: float | None = 25.0
    lattice_frames: int = 3
    lattice_gate_mm: float | None = 5.0
    lattice: LatticeParams = LatticeParams()


@dataclass
class ContrastResult:
    """Pattern label, its confidence, the alarm time (s, frame clock; None = no alarm),
    the time contrast was first seen, the opacified mask of the last frame, the per-frame
    features, the largest saturation likelihood ratio, the cue that fired the alarm
    ('shape', 'pieces', 'lattice', 'ridge', 'saturation', 'plateau'; '' = none), the
    opacified mask at the alarm and (cue 'ridge' / 'lattice') the line mask at the alarm."""

    label: str
    confidence: float
    alarm_time_s: float | None
    arrival_time_s: float | None
    mask: np.ndarray | None = None
    features: list[FrameFeatures] = field(default_factory=list)
    evidence_llr: float = 0.0
    alarm_cause: str = ""
    alarm_mask: np.ndarray | None = None
    alarm_ridge: np.ndarray | None = None

    @property
    def intravascular(self) -> bool:
        return self.label in INTRAVASCULAR


def classify_sequence(frames: list[Frame], mode: str = "live", n_mask: int = 3,
                      params: ContrastParams | None = None, record_all: bool = False
                      ) -> ContrastResult:
    """Pattern, confidence and intravascular alarm time of an FL contrast sequence.

    frames: Frames (no truth needed), in time order; live: the first ``n_mask`` are
    pre-injection; dsa: subtracted frames (the mask frame may lead). ``record_all``: keep
    computing the evidence (``features[i].llr``, ``ridge_mm``) after the alarm (for
    tuning and plots).
    """
    p = params or ContrastParams()
    if mode not in ("live", "dsa"):
        raise ValueError(f"mode: {mode!r}; choose live or dsa")
    maps, times = opacification(frames, mode, n_mask, p.live_average)
    if not maps:
        return ContrastResult("soft_tissue", 0.0, None, None)
    live = mode == "live"
    f0 = next(f for f in frames if live or f.settings.get("dsa_role") != "mask")
    pixel_mm = float(f0.spacing_mm[0])
    st = _State()
    a = float(frames[-1].settings.get("temporal_filter", p.temporal_filter)) if live else 1.0
    if live and frames[-1].settings.get("motion_detection"):
        a = 1.0  # a motion-adaptive filter passes a change at once: nothing to undo
    # pixels clipped at the display's black / white (air beside the neck) carry no signal
    valid = unclipped(frames[0] if live else next(
        (f for f in frames if f.settings.get("dsa_role") == "mask"), f0))
    tc = TimeCourse(pixel_mm, p.roi_dilate_mm, recursive_weight=a,
                    before=before_map(frames, n_mask) if live else None, valid=valid)
    # last frame known to precede the injection (the start is searched after it)
    t0 = float(frames[n_mask - 1].time_s) if live else float(times[0])
    nmap = noise_map(frames[:n_mask], pixel_mm, p, valid) if live and p.local_noise \
        else None
    grids: list[np.ndarray] = []
    need_shape = p.shape_frames_live if live else 1
    need_pieces = p.pieces_frames_live if live else 1
    r = max(1, int(round(p.ridge_exclude_mm / pixel_mm)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    for cmap, t in zip(maps, times, strict=True):
        if not live and p.dsa_noise_block_mm is not None:
            grids.append(dsa_noise_grid(cmap, pixel_mm, p.dsa_noise_block_mm, valid))
            nmap = dsa_noise_map(grids, cmap.shape, pixel_mm, p)
        f, m, z = frame_features(cmap, pixel_mm, t, p, st.origin, nmap, valid)
        st.feats.append(f)
        tc.add(cmap, t, m)
        st.last_mask = m
        looking = st.alarm is None or record_all
        if live and looking:
            ex = dilate_mask(m, disc) if m.any() else None
            f.ridge_mm, ridge = ridge_length(z, pixel_mm, st.origin, p.line, ex)
            st.ridge_run = st.ridge_run + 1 if f.ridge_mm >= p.ridge_min_mm else 0
            if st.ridge_run >= p.ridge_frames:
                st.fire(t, "ridge", m, ridge)
        if f.area_mm2 <= 0 and st.origin is None:
            continue
        if st.origin is None:
            st.origin, st.arrival = first_point(cmap, m), t
        lat = None
        if live and looking and p.lattice_min_mm is not None:
            f.lattice_mm, lat = lattice_length(z, m, pixel_mm, st.origin, p.lattice)
            st.lattice_run = st.lattice_run + 1 if f.lattice_mm >= p.lattice_min_mm else 0
        st.shape_run = st.shape_run + 1 if _vessel_shape(f, p, live) else 0
        st.pieces_run = st.pieces_run + 1 if _vessel_pieces(f, p, live) else 0
        if st.shape_run >= need_shape:
            st.fire(t, "shape", m)
        if st.pieces_run >= need_pieces:
            st.fire(t, "pieces", m)
        if st.lattice_run >= p.lattice_frames:
            st.fire(t, "lattice", m, lat)
        if not live:
            if st.alarm is None and _plateau(st.feats, st.arrival, p):
                st.fire(t, "plateau", m)
        elif looking:
            tt, sig, sigma = tc.signal()
            f.llr, _ = saturation_llr(tt, sig, sigma, t0, min_frames=p.min_frames)
            st.llr_max = max(st.llr_max, f.llr)
            if f.llr >= p.alarm_llr:
                st.fire(t, "saturation", m)
    label, conf = _final_label(st.feats, st.alarm, st.cause, p)
    return ContrastResult(label, conf, st.alarm, st.arrival, st.last_mask, st.feats,
                          st.llr_max, st.cause, st.alarm_mask, st.alarm_ridge)


@dataclass
class _State:
    """Running state of :func:`classify_sequence`."""

    feats: list[FrameFeatures] = field(default_factory=list)
    origin: tuple[float, float] | None = None
    arrival: float | None = None
    alarm: float | None = None
    cause: str = ""
    alarm_mask: np.ndarray | None = None
    alarm_ridge: np.ndarray | None = None
    last_mask: np.ndarray | None = None
    llr_max: float = 0.0
    shape_run: int = 0
    pieces_run: int = 0
    ridge_run: int = 0
    lattice_run: int = 0

    def fire(self, t: float, cause: str, mask: np.ndarray,
             ridge: np.ndarray | None = None) -> None:
        if self.alarm is None:
            self.alarm, self.cause, self.alarm_mask, self.alarm_ridge = t, cause, mask, ridge


def _vessel_shape(f: FrameFeatures, p: ContrastParams, live: bool = True) -> bool:
    """A thin far-reaching opacification for little iodine (a vessel filled at once), or a
    network reaching far whatever its iodine, made of thin lines on live frames (a
    plexus: mean width ≤ ``plexus_max_width_mm``); see :mod:`.contrast_shape`."""
    r = f.spread_ratio
    if not r == r:  # nan: nothing opacified
        return False
    vmax = p.vessel_max_area_mm2 if live else p.dsa_vessel_max_area_mm2
    if r >= p.vessel_spread_ratio and f.eff_area_mm2 <= vmax:
        return True
    thin = not live or p.plexus_max_width_mm is None or f.width_mm <= p.plexus_max_width_mm
    return r >= p.plexus_spread_ratio and thin and _lines(f, p, live)


def _lines(f: FrameFeatures, p: ContrastParams, live: bool) -> bool:
    """Live: thin lines inside the opacified region (≥ ``lattice_gate_mm``), or none
    measurable (no region near the first opacified point); DSA: always."""
    if not live or p.lattice_gate_mm is None or p.lattice_min_mm is None:
        return True
    return f.lattice_mm >= p.lattice_gate_mm or f.near_ratio != f.near_ratio


def _vessel_pieces(f: FrameFeatures, p: ContrastParams, live: bool = True) -> bool:
    """The opacified pieces near the first opacified point reach far for the little
    iodine they hold together (a vessel seen where it runs along the beam)."""
    r = f.near_ratio
    vmax = p.vessel_max_area_mm2 if live else p.dsa_vessel_max_area_mm2
    return (r == r and r >= p.vessel_spread_ratio and f.near_eff_mm2 <= vmax
            and _lines(f, p, live))


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


def _final_label(feats: list[FrameFeatures], alarm: float | None, cause: str,
                 p: ContrastParams) -> tuple[str, float]:
    """Pattern label and confidence. Intravascular (an alarm): venous when the spread
    ratio ever reaches ``venous_spread_ratio`` or the ridge or lattice cue fired (the
    plexus runs along the canal; seeds 0–71: every ridge alarm was venous), else arterial."""
    seen = [f for f in feats if f.area_mm2 > 0]
    if alarm is not None:
        ratios = [f.spread_ratio for f in seen if f.spread_ratio == f.spread_ratio]
        if cause in ("ridge", "lattice") or (ratios and max(ratios) >= p.venous_spread_ratio):
            return "intravascular_venous", 0.75
        return "intravascular_arterial", 0.75
    if not seen:
        return "soft_tissue", 0.2
    big = max(seen, key=lambda f: f.signal)
    if big.area_mm2 <= p.articular_area_mm2:
        return "intra_articular", 0.65
    if big.area_mm2 >= p.intrathecal_area_mm2:  # the sac fills wide and long
        return "intrathecal", 0.6
    if big.height_mm < p.epidural_aspect * big.breadth_mm:
        return "epidural", 0.6
    if big.height_mm >= p.intrathecal_height_mm:
        return "intrathecal", 0.6
    return "soft_tissue", 0.5


__all__ = ["INTRAVASCULAR", "LABELS", "ContrastParams", "ContrastResult", "FrameFeatures",
           "classify_sequence", "draw_contrast", "frame_features", "noise_map",
           "opacification"]
