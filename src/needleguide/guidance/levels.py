"""Vertebral level labels in fluoroscopy AP and lateral frames, from pixels and the C-arm
settings only (``pixel_mm``, ``sod_mm``, ``sid_mm``, ``display``).

Method: bone made bright (display polarity from the settings); the spinal column traced
row by row (arg-max of a body-wide box blur, robust quadratic fit of column vs row); the
intensity profile along it (a band ±``band_mm`` wide); end-plates seen edge-on are sharp
bright pairs, so the high-passed, rectified, smoothed profile peaks at each disc space.
Disc candidates follow the vertebral pitch (
clipped to 28–42 mm at the isocentre) as a regular comb snapped to the energy peaks;
bodies are labelled upward from the L5–S1 disc (L5, L4, …), the sacrum S1 below it.
Which disc is L5–S1: on the lateral view the iliac wings overlap the column from L5
down, so the profile along the column steps up most (as a continuous row, snapped to the
nearest end-plate peak) at L4–L5; the discs above are walked up from it and L5–S1 lies
0.9 pitch below. On the AP view two cues
are combined: the sacral mass (the bands 30–70 mm either side of the column brighten most
steeply, on both sides, where the sacral ala and iliac wings begin below L5; each local
maximum a candidate row) and the disc comb (a real L5–S1 has a disc one pitch above it and
none in the pitch below); the discs above the anchor are walked up one pitch at a time and
snapped to end-plate peaks. Confidence falls with irregular spacing and (AP) a small
margin between the best and the runner-up anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.signal import find_peaks

from needleguide.frame import Frame

ORDER = ("S1", "L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9")


@dataclass(frozen=True)
class LevelLabel:
    """One labelled vertebra: name, body centre (col, row) px and image mm, confidence."""

    name: str
    col_px: float
    row_px: float
    x_mm: float
    y_mm: float
    confidence: float

    def to_json(self) -> dict:
        return {"name": self.name, "px": [round(self.col_px, 1), round(self.row_px, 1)],
                "image_mm": [round(self.x_mm, 1), round(self.y_mm, 1)],
                "confidence": round(self.confidence, 3)}


@dataclass(frozen=True)
class LevelParams:
    """*Assumptions* (tuned on seeds 100–113 and 200–215): band_mm half-width of the profile band,
    body_mm box width for tracing the column, pitch_mm prior vertebral pitch at the
    isocentre (clipped to ``pitch_range_mm``), min_tooth: weakest end-plate tooth (share
    of the strongest) still a disc, snap: how far (pitches) a tooth may move to an energy peak,
    crest_band_mm: lateral offsets of the AP iliac-wing bands."""

    band_mm: float = 12.0
    body_mm: float = 40.0
    pitch_mm: float = 35.0
    pitch_range_mm: tuple[float, float] = (28.0, 42.0)
    min_prominence: float = 0.25
    snap: float = 0.2
    min_tooth: float = 0.2
    crest_band_mm: tuple[float, float] = (30.0, 70.0)
    sacral_sigma_mm: float = 2.0
    sacral_half_mm: float = 6.0
    sacral_offset_mm: float = 6.0
    walk_snap: float = 0.2
    side_penalty: float = 0.5
    anchor_min_share: float = 0.4
    comb_weight: float = 1.0
    lateral_half_mm: float = 10.0
    lateral_offset_mm: float = 3.7
    l5_pitch_share: float = 0.9
    lateral_snap: float = 0.5
    pitch_prior_weight: float = 0.5


def iso_pixel_mm(frame: Frame) -> float:
    """Pixel size at the isocentre (mm): detector pixel × SOD / SID."""
    s = frame.settings
    pix = float(s.get("pixel_mm", frame.spacing_mm[0]))
    return pix * float(s.get("sod_mm", 650.0)) / float(s.get("sid_mm", 1000.0))


def bone_bright(frame: Frame) -> np.ndarray:
    """Float image in [0, 1] with bone bright, whatever the display polarity."""
    g = np.asarray(frame.pixels, np.float32)
    if g.ndim == 3:
        g = g.mean(axis=2)
    if g.max() > 1.5:
        g = g / 255.0
    if frame.settings.get("display", "white-bone") == "black-bone":
        g = 1.0 - g
    return g


def spine_column(g: np.ndarray, pix_mm: float, body_mm: float = 40.0) -> np.ndarray:
    """Column (px) of the vertebral bodies' axis for every row: arg-max of the end-plate
    (vertical-gradient) energy in a body-sized box, robust quadratic fit."""
    h, w = g.shape
    k = max(3, int(body_mm / pix_mm) | 1)
    ey = np.abs(cv2.Sobel(cv2.GaussianBlur(g, (0, 0), 1.0), cv2.CV_32F, 0, 1, ksize=3))
    sm = cv2.blur(ey, (k, int(1.5 * k) | 1))
    lo, hi = w // 5, w - w // 5
    col = np.argmax(sm[:, lo:hi], axis=1).astype(float) + lo
    rows = np.arange(h, dtype=float)
    keep = np.ones(h, bool)
    coef = np.polyfit(rows, col, 2)
    for _ in range(3):
        coef = np.polyfit(rows[keep], col[keep], 2)
        res = np.abs(np.polyval(coef, rows) - col)
        keep = res < max(15.0 / pix_mm, np.percentile(res, 60))
    return np.clip(np.polyval(coef, rows), 0, w - 1)


def column_profile(g: np.ndarray, col: np.ndarray, half_px: int) -> np.ndarray:
    """Mean intensity per row in a band of ±half_px around the column."""
    h, w = g.shape
    cc = np.clip(np.rint(col)[:, None].astype(int) + np.arange(-half_px, half_px + 1)[None],
                 0, w - 1)
    return g[np.arange(h)[:, None], cc].mean(axis=1)


def disc_energy(profile: np.ndarray, pix_mm: float) -> np.ndarray:
    """End-plate energy: rectified high-pass of the profile, smoothed over a disc height."""
    p = profile.astype(np.float32).reshape(-1, 1)
    hp = p - cv2.GaussianBlur(p, (1, 0), 3.0 / pix_mm)
    e = cv2.GaussianBlur(np.abs(hp), (1, 0), 2.5 / pix_mm).ravel()
    return e / (np.percentile(e, 95) + 1e-9)


def comb_teeth(e: np.ndarray, pix_mm: float, p: LevelParams
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """The regular comb (pitch, phase) that collects the most end-plate energy: its teeth
    (rows, top first) snapped to the nearest energy peak within ``snap`` pitches, the
    energy of each snapped tooth (0 when no peak is near) and the pitch (px)."""
    h = e.size
    rows = np.arange(h, dtype=float)
    best = (-1.0, 0.0, 0.0)
    for pitch in np.arange(p.pitch_range_mm[0] / pix_mm, p.pitch_range_mm[1] / pix_mm, 0.5):
        phase = np.arange(0.0, pitch, 1.0)[:, None]
        teeth = phase + pitch * np.arange(int(h / pitch) + 1)[None, :]
        inside = teeth < h - 1
        val = np.interp(np.where(inside, teeth, 0.0), rows, e) * inside
        score = val.sum(axis=1) / inside.sum(axis=1)
        k = int(np.argmax(score))
        if score[k] > best[0]:
            best = (float(score[k]), float(pitch), float(phase[k, 0]))
    _, pitch, phase = best
    peaks, _ = find_peaks(e, prominence=p.min_prominence * 0.2)
    teeth = np.arange(phase, h, pitch)
    snapped = teeth.copy()
    real = np.zeros(teeth.size)
    if peaks.size:
        d = np.abs(peaks[None, :] - teeth[:, None])
        j = np.argmin(d, axis=1)
        near = d[np.arange(teeth.size), j] <= p.snap * pitch
        snapped[near] = peaks[j[near]]
        real[near] = e[peaks[j[near]]]
    return snapped, real, float(pitch)


def lowest_disc_ap(real: np.ndarray, p: LevelParams) -> int | None:
    """AP: the lowest tooth still on a real end-plate peak (≥ ``min_tooth`` of the
    strongest); the sacrum below it has no disc."""
    ok = np.flatnonzero(real >= p.min_tooth * real.max()) if real.size else real
    return int(ok[-1]) if ok.size else None


def lowest_disc_lateral(profile: np.ndarray, teeth: np.ndarray, pitch: float,
                        pix_mm: float) -> int:
    """Lateral: the iliac wings overlap the column from L5 down, so the profile steps up
    most across the L4-L5 disc; L5-S1 is the next tooth below (index may be one past the
    last tooth when it lies outside the image)."""
    w = max(1, int(4.0 / pix_mm))
    b = int(0.3 * pitch)
    sd = float(profile.std()) + 1e-9
    steps = np.full(teeth.size, -np.inf)
    for k, t in enumerate(teeth.astype(int)):
        if t - b - w >= 0 and t + b + w < profile.size:
            steps[k] = (profile[t + b - w:t + b + w].mean()
                        - profile[t - b - w:t - b + w].mean()) / sd
    return int(np.argmax(steps)) + 1


def label_levels(frame: Frame, params: LevelParams | None = None) -> list[LevelLabel]:
    """Level labels (S1 and up) of an FL AP or lateral frame, bottom first."""
    p = params or LevelParams()
    g = bone_bright(frame)
    pix = iso_pixel_mm(frame)
    h, w = g.shape
    col = spine_column(g, pix, p.body_mm)
    prof = column_profile(g, col, max(1, int(p.band_mm / pix)))
    e = disc_energy(prof, pix)
    teeth, real, pitch = comb_teeth(e, pix, p)
    lateral = abs(abs(float(frame.settings.get("orbit_deg", 0.0))) - 90.0) < 30.0 \
        or frame.settings.get("view") == "lateral"
    if teeth.size == 0:
        return []
    if lateral:
        r45 = lateral_l4l5(prof, pix, p)
        pk, _ = find_peaks(e, prominence=p.min_prominence * 0.2)
        if pk.size and np.min(np.abs(pk - r45)) <= p.lateral_snap * p.pitch_mm / pix:
            r45 = float(pk[np.argmin(np.abs(pk - r45))])
        up = anchored_comb(e, r45, pix, p)
        pitch = float(np.median(-np.diff(up))) if up.size > 1 else pitch
        discs = np.concatenate([[r45 + pitch * p.l5_pitch_share], up])
    else:
        # the sacral mass (bands 30-70 mm either side brighten below L5) checked against
        # the disc comb (a disc one pitch above, none below); cross-check: the lowest
        # comb tooth on a real end-plate peak
        anchor, support = sacral_anchor_ap(g, col, e, pix, p)
        ke = lowest_disc_ap(real, p)
        agree = ke is not None and abs(teeth[ke] - anchor) < 0.5 * pitch
        discs = anchored_comb(e, anchor, pix, p)
        pitch = float(np.median(-np.diff(discs))) if discs.size > 1 else pitch
    spacing = np.diff(discs[::-1]) if discs.size > 1 else np.array([pitch])
    regular = float(np.clip(1.0 - np.std(spacing) / pitch, 0.0, 1.0))
    conf = 0.55 + 0.4 * regular
    if not lateral:
        conf *= 0.8 + 0.2 * min(1.0, support / 0.3)
        conf = min(0.99, conf + 0.05) if agree else conf
    centres = [discs[0] + 0.5 * pitch] + [0.5 * (discs[k] + discs[k + 1])
                                          for k in range(discs.size - 1)]
    centres.append(discs[-1] - 0.5 * pitch)
    out = []
    for k, r in enumerate(centres):
        if k >= len(ORDER) or not (0 <= r < h):
            continue
        c = float(col[int(np.clip(round(r), 0, h - 1))])
        out.append(LevelLabel(ORDER[k], c, float(r), c * frame.spacing_mm[1],
                              float(r) * frame.spacing_mm[0],
                              float(conf * (0.9 if k == len(centres) - 1 else 1.0))))
    return out


def lateral_l4l5(profile: np.ndarray, pix_mm: float, p: LevelParams) -> float:
    """Lateral: the L4-L5 disc row. The iliac wings overlap the column from L5 down, so
    the smoothed profile along the column (σ ``sacral_sigma_mm``) steps up most, over
    ±``lateral_half_mm``, just above L4-L5 (``lateral_offset_mm``)."""
    sp = cv2.GaussianBlur(profile.astype(np.float32).reshape(-1, 1), (1, 0),
                          p.sacral_sigma_mm / pix_mm).ravel()
    hp = max(1, int(p.lateral_half_mm / pix_mm))
    if sp.size <= 2 * hp:
        return float(sp.size - 1)
    d = sp[2 * hp:] - sp[:-2 * hp]
    return float(np.argmax(d) + hp + p.lateral_offset_mm / pix_mm)


def anchored_comb(e: np.ndarray, anchor: float, pix_mm: float, p: LevelParams
                  ) -> np.ndarray:
    """Disc rows from the L5-S1 anchor upward (bottom first): the pitch whose comb hung
    from the anchor collects the most end-plate energy, then each disc walked up one
    pitch from the previous and snapped to the nearest energy peak within ``snap``
    pitches (so a pitch that varies along the column is followed)."""
    rows = np.arange(e.size, dtype=float)
    best, pitch = -1.0, p.pitch_mm / pix_mm
    for pt in np.arange(p.pitch_range_mm[0] / pix_mm, p.pitch_range_mm[1] / pix_mm, 0.5):
        t = anchor - pt * np.arange(1, int(anchor / pt) + 1)
        if t.size == 0:
            continue
        sc = float(np.interp(t, rows, e).mean()) - p.pitch_prior_weight * abs(
            pt * pix_mm / p.pitch_mm - 1.0)
        if sc > best:
            best, pitch = sc, float(pt)
    peaks, _ = find_peaks(e, prominence=p.min_prominence * 0.2)
    discs = [anchor]
    while discs[-1] - pitch >= 0:
        t = discs[-1] - pitch
        if peaks.size:
            j = int(np.argmin(np.abs(peaks - t)))
            if abs(peaks[j] - t) <= p.walk_snap * pitch:
                t = float(peaks[j])
        discs.append(t)
    return np.asarray(discs)


def sacral_anchor_ap(g: np.ndarray, col: np.ndarray, e: np.ndarray, pix_mm: float,
                     p: LevelParams) -> tuple[float, float]:
    """AP: the L5-S1 disc row and a support score in [0, 1].

    Cue 1, the sacral mass: going down, the bands ``crest_band_mm`` either side of the
    column brighten most steeply where the sacral ala and the iliac wings (joined at the
    SI joints) begin, just below L5 (the L5 transverse processes and the psoas above are
    darker). Per side, the difference of the smoothed band profile ``sacral_half_mm``
    below and above each row; both sides summed, their disagreement penalised
    (``side_penalty``: bowel gas on one side makes a one-sided step). Every local
    maximum ≥ ``anchor_min_share`` of the best is a candidate, its disc
    ``sacral_offset_mm`` below the step.
    Cue 2, the disc comb: a real L5-S1 has a disc (end-plate energy) about one pitch
    above it (L4-L5) and none in the pitch below (the fused sacrum); each candidate's
    step (share of the best) gains ``comb_weight`` × (energy one pitch above − energy
    below). The candidate with the highest sum wins; the support is the winner's
    margin over the runner-up."""
    h, w = g.shape
    a, b = int(p.crest_band_mm[0] / pix_mm), max(int(p.crest_band_mm[1] / pix_mm),
                                                  int(p.crest_band_mm[0] / pix_mm) + 1)
    offs = np.arange(a, b)
    c = np.rint(col).astype(int)[:, None]
    rows = np.arange(h)[:, None]
    hp = max(1, int(p.sacral_half_mm / pix_mm))
    if h <= 2 * hp + 2:
        return float(h - 1), 0.0
    steps = []
    for sgn in (-1, 1):
        sp = g[rows, np.clip(c + sgn * offs[None], 0, w - 1)].mean(axis=1)
        sp = cv2.GaussianBlur(sp.astype(np.float32).reshape(-1, 1), (1, 0),
                              p.sacral_sigma_mm / pix_mm).ravel()
        steps.append(sp[2 * hp:] - sp[:-2 * hp])
    d = steps[0] + steps[1] - p.side_penalty * np.abs(steps[0] - steps[1])
    cand, _ = find_peaks(np.concatenate([[-np.inf], d, [-np.inf]]),
                         distance=max(1, int(15.0 / pix_mm)))
    cand = cand - 1
    top = float(d.max())
    if top <= 0 or cand.size == 0:
        return float(np.argmax(d) + hp + p.sacral_offset_mm / pix_mm), 0.0
    cand = cand[d[cand] >= p.anchor_min_share * top]
    pitch = p.pitch_mm / pix_mm
    scores, rows_ = [], []
    for q in cand:
        an = float(q + hp + p.sacral_offset_mm / pix_mm)
        lo, hi = int(an + 0.3 * pitch), min(h, int(an + 1.0 * pitch))
        below = float(e[lo:hi].max()) if hi > lo else 0.0
        lo, hi = max(0, int(an - 1.3 * pitch)), max(0, int(an - 0.7 * pitch))
        above = float(e[lo:hi].max()) if hi > lo else 0.0
        scores.append(d[q] / top + p.comb_weight * (above - below))
        rows_.append(an)
    order = np.argsort(scores)[::-1]
    margin = scores[order[0]] - (scores[order[1]] if order.size > 1 else 0.0)
    return rows_[order[0]], float(np.clip(margin, 0.0, 1.0))


def side_profile(g: np.ndarray, col: np.ndarray, pix_mm: float,
                 band_mm: tuple[float, float] = (40.0, 80.0)) -> np.ndarray:
    """Mean intensity per row of the bands ``band_mm`` either side of the column (where
    the iliac wings appear on an AP view)."""
    h, w = g.shape
    offs = np.arange(int(band_mm[0] / pix_mm), max(int(band_mm[1] / pix_mm),
                                                    int(band_mm[0] / pix_mm) + 1))
    c = np.rint(col).astype(int)[:, None]
    rows = np.arange(h)[:, None]
    return 0.5 * (g[rows, np.clip(c - offs[None], 0, w - 1)].mean(axis=1)
                  + g[rows, np.clip(c + offs[None], 0, w - 1)].mean(axis=1))


def baseline_levels(frame: Frame, pitch_mm: float = 35.0) -> list[LevelLabel]:
    """Naive intensity-profile peak counting: the bright peaks of the central column's
    profile are bodies; the lowest is S1, then L5, L4, … upward."""
    g = bone_bright(frame)
    pix = iso_pixel_mm(frame)
    h, w = g.shape
    half = max(1, int(10.0 / pix))
    prof = g[:, w // 2 - half:w // 2 + half + 1].mean(axis=1).astype(np.float32)
    prof = cv2.GaussianBlur(prof.reshape(-1, 1), (1, 0), 3.0 / pix).ravel()
    peaks, _ = find_peaks(prof, distance=max(2, int(0.6 * pitch_mm / pix)))
    out = []
    for k, r in enumerate(peaks[::-1]):
        if k < len(ORDER):
            out.append(LevelLabel(ORDER[k], w / 2, float(r), w / 2 * frame.spacing_mm[1],
                                  float(r) * frame.spacing_mm[0], 0.5))
    return out


def draw_levels(frame: Frame, labels: list[LevelLabel]) -> np.ndarray:
    """RGB uint8 overlay: a tick and the level name at every labelled body."""
    g = bone_bright(frame) if frame.settings.get("display") != "black-bone" else \
        1.0 - bone_bright(frame)
    img = cv2.cvtColor((np.clip(g, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    scale = max(1, 512 // img.shape[0])
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for lab in labels:
        c, r = int(lab.col_px * scale), int(lab.row_px * scale)
        col = (60, 220, 60) if lab.confidence >= 0.8 else (240, 200, 40)
        cv2.line(img, (c - 40, r), (c - 15, r), col, 2, cv2.LINE_AA)
        cv2.putText(img, f"{lab.name} {lab.confidence:.2f}", (max(0, c - 150), r + 5),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, col, 1, cv2.LINE_AA)
    return img
