"""The needle analyser of a trainer session: ``guidance.tracking.NeedleTracker`` on every
new frame while the needle is in the body (as ``LiveSession`` runs it), its prior the
track's prediction, else where the trainee means the needle to be (the picked entry to
the intended tip: what the hand and the needle markings tell; FL: projected, hub to
tip). The track is dropped when the C-arm changes pose or the needle leaves the body;
DSA subtracted frames (the static needle subtracted out) are not analysed.

Ultrasound also runs ``guidance.needle_motion.NeedleMotion`` on the frames of a still
probe (reset when the probe moves): the tissue the needle drags as the trainee advances
or jiggles it shows the needle where its echo does not; its detection is shown when the
tracker's has no tip seen at the echo's end."""

from __future__ import annotations

import numpy as np

from needleguide.guidance.needle_motion import NeedleMotion
from needleguide.live.session import _PlanTracker
from needleguide.live.trainer_carm import pose_key
from needleguide.session import imaging as im


class NeedleAnalyser:
    """``needle``: the session's ``NeedleControl``; ``us_view``: the name the US frames
    are counted under. ``counts``: per view, frames analysed and needle found (the
    result's ``analyser``)."""

    def __init__(self, needle, us_view: str):
        self.needle, self.us_view = needle, us_view
        self.tracker = _PlanTracker()
        self.motion = NeedleMotion()
        self.counts: dict[str, dict[str, int]] = {}
        self._pose: tuple | None = None
        self._probe: bytes | None = None

    def update(self, frame, carm=None):
        """The detection on ``frame`` (without truth; ``carm``: its C-arm pose, FL), or
        None when nothing is analysed."""
        nd = self.needle
        if not nd.in_body or frame.settings.get("dsa_role") == "subtracted":
            self.tracker.reset()
            self.motion.reset()
            return None
        guess = nd.guess()
        if carm is None:
            view = self.us_view
            self.tracker.fallback = im.us_prior(frame, nd.entry, guess)
        else:
            view = carm.view
            if pose_key(carm) != self._pose:
                self.tracker.reset()
                self._pose = pose_key(carm)
            self.tracker.fallback = im.fl_prior(carm, guess - nd.aim * nd.length_mm, guess)
        det = self.tracker.update(frame)
        if carm is None:
            probe = np.round(np.asarray(frame.ImageToPatient, float), 3).tobytes()
            if probe != self._probe:  # the probe moved: the motion starts afresh
                self.motion.reset()
                self._probe = probe
            moving = self.motion.update(frame)
            if moving.found and not (det.found and det.tip_visible):
                det = moving
        c = self.counts.setdefault(view, {"frames": 0, "found": 0})
        c["frames"] += 1
        c["found"] += int(bool(det.found))
        nd.seen_on(det, det.tip_patient_mm if carm is None and det.found else None)
        return det


__all__ = ["NeedleAnalyser"]
