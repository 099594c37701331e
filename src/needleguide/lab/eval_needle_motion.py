"""Evaluation of the needle tip from motion (issue 16 part 4): ``evaluate needle``'s
``sequence`` results.

The sequences of :mod:`needleguide.lab.needle_motion_cases` (advance, pause, jiggle, hold;
each with a needle-free twin) are fed frame by frame, without truth, to
:class:`~needleguide.guidance.needle_motion.NeedleMotion`, to the single-frame analyser
(:func:`~needleguide.guidance.needle.detect_needle`, the baseline here) and to the
single-frame tracker (:class:`~needleguide.guidance.tracking.NeedleTracker`). Scored as
``eval_needle.score_cases``: tip error (image-plane mm) over all detections, detection
rate over the needle frames whose tip is in the image, false positives over the
needle-free frames; broken down by phase and insertion angle.
"""

from __future__ import annotations

from needleguide.guidance.needle import NeedleDetection, detect_needle
from needleguide.guidance.needle_motion import NeedleMotion
from needleguide.guidance.tracking import NeedleTracker
from needleguide.lab.needle_cases import Case
from needleguide.lab.needle_motion_cases import PAUSE_FRAMES, RATE_HZ, Sequence

ANGLE_BANDS = ((15.0, 30.0), (30.0, 50.0), (50.0, 70.0))
PHASES = ("advance", "pause", "jiggle", "hold")


def run_sequences(seqs: list[Sequence]) -> dict[str, tuple[list[Case], list[NeedleDetection]]]:
    """Per method (``motion``, ``single_frame``, ``tracked``): the scored cases and their
    detections."""
    out: dict[str, tuple[list, list]] = {k: ([], []) for k in ("motion", "single_frame",
                                                               "tracked")}
    for sq in seqs:
        nm, tr = NeedleMotion(), NeedleTracker()
        for c in sq.cases:
            f = c.frame.without_truth()
            dets = {"motion": nm.update(f), "single_frame": detect_needle(f),
                    "tracked": tr.update(f)}
            if not c.params.get("scored", True):
                continue
            for k, d in dets.items():
                out[k][0].append(c)
                out[k][1].append(d)
    return out


def _band(angle: float) -> str:
    for lo, hi in ANGLE_BANDS:
        if lo <= angle < hi or (hi == ANGLE_BANDS[-1][1] and angle == hi):
            return f"{lo:.0f}-{hi:.0f}"
    return "other"


def evaluate_sequences(seqs: list[Sequence]) -> dict:
    """The ``sequence`` block of ``evaluate needle``: ``motion`` (ours), ``single_frame``
    and ``tracked`` on the same frames, each with ``eval_needle.score_cases``' keys, a
    ``breakdown`` by ``phase`` and ``angle_band`` (needle-free frames go with the band of
    their twin), and for ``motion`` the share of detections per tip source."""
    from needleguide.lab.eval_needle import measure_fps, score_cases

    res: dict = {}
    runs = run_sequences(seqs)
    for k, (cases, dets) in runs.items():
        r = score_cases(cases, dets)
        bd: dict = {"phase": {}, "angle_band": {}}
        for ph in PHASES:
            sel = [i for i, c in enumerate(cases) if c.params.get("phase") == ph
                   or (not c.has_needle and c.params.get("phase_twin") == ph)]
            if sel:
                bd["phase"][ph] = _sub(score_cases, cases, dets, sel)
        for lo, hi in ANGLE_BANDS:
            name = f"{lo:.0f}-{hi:.0f}"
            sel = [i for i, c in enumerate(cases)
                   if _band(float(c.params["insertion_angle_deg"])) == name]
            if sel:
                bd["angle_band"][name] = _sub(score_cases, cases, dets, sel)
        r["breakdown"] = bd
        if k == "motion":
            src: dict = {}
            for c, d in zip(cases, dets, strict=True):
                if c.has_needle and d.found:
                    s = d.extra.get("tip_from", "?")
                    src[s] = src.get(s, 0) + 1
            r["tip_from"] = src
        res[k] = r
    pos = [s for s in seqs if s.has_needle]
    res.update(n_sequences=len(pos), n_needle_free_sequences=len(seqs) - len(pos),
               fps=measure_fps([c.frame.without_truth() for c in pos[0].cases],
                               NeedleMotion().update, repeats=2) if pos else None,
               protocol={"rate_hz": RATE_HZ, "advance_mm": [6.0, 15.0],
                         "speed_mm_s": [2.0, 8.0], "pause_frames": PAUSE_FRAMES,
                         "jiggle_mm": [1.0, 2.0], "jiggle_hz": [1.5, 2.5],
                         "tremor_mm": sorted({float(s.params.get("tremor_mm", 0.0))
                                              for s in seqs})})
    return res


def _sub(score, cases, dets, sel) -> dict:
    r = score([cases[i] for i in sel], [dets[i] for i in sel])
    keep = ("tip_error_mm", "detection_rate", "false_positive_rate", "tip_within_2mm_rate",
            "n_needle_frames", "n_needle_free_frames")
    return {k: r[k] for k in keep}


__all__ = ["ANGLE_BANDS", "PHASES", "evaluate_sequences", "run_sequences"]
