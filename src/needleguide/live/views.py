"""The live session's imaging per modality, built from the session engine's operators
(``session/operator.py``: the procedure's US view and probe pose, or the C-arm views and
the fluoroscope) and its imaging helpers (``session/imaging.py``: analyser priors, rays).

``USView``: B-mode frames at ``ProbeToPatient`` (settable; the operator's planned pose to
start with), the imager's grid ``pixels``². ``FluoroView``: pulsed fluoroscopy at the
working view (C-arm pose cached at start-up, as is the confirmation view's), the
detector ``pixels``²; :meth:`FluoroView.use` swings the C-arm to another cached view.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from needleguide.frame import Frame
from needleguide.guidance.needle import NeedleDetection
from needleguide.live.poses import pose_from_z
from needleguide.scene import Scene
from needleguide.session import imaging as im


class USView:
    """B-mode imaging of a live session (``op``: the session's ``USOperator``)."""

    modality = "us"

    def __init__(self, op, pixels: int, seed: int):
        self.seed = int(seed)
        self.set_settings(op.s.model_copy(update={"output_px": int(pixels)}))
        self.probe_to_patient = np.asarray(op.P2P, float).copy()
        self.plan = op.plan

    def set_settings(self, settings) -> None:
        """Image with ``settings`` (a ``USSettings``: depth, gain, frequency…) from the next
        frame on: a new imager (its medium slab is rebuilt on the first frame, ≈ 0.2 s)
        and ``meta``."""
        from needleguide.us import USImager

        self.settings = settings
        self.imager = USImager(self.settings, seed=self.seed)
        st = self.imager.setup
        self.meta: dict[str, Any] = {
            "ProbeType": str(self.settings.probe), "Depths": float(self.settings.depth_mm),
            "SpacingX": float(st.spacing_mm), "SpacingY": float(st.spacing_mm),
            "FrequencyMhz": float(self.settings.f_mhz)}

    def set_probe(self, probe_to_patient: np.ndarray) -> None:
        self.probe_to_patient = probe_to_patient

    def render(self, scene: Scene) -> Frame:
        return self.imager.render(scene, self.probe_to_patient)

    def transforms(self) -> dict[str, np.ndarray]:
        return {"ProbeToReference": self.probe_to_patient.copy()}

    def prior(self, frame: Frame, tip_guess_mm) -> NeedleDetection:
        """The planned shaft (skin entry to the intended tip) on this frame."""
        return im.us_prior(frame, self.plan.entry_mm, tip_guess_mm)

    def tip_pose(self, frame: Frame, det: NeedleDetection, guess_mm=None) -> np.ndarray:
        """Detected tip as a needle-frame pose: the tip in the image plane, +z along the
        detected shaft toward its other end (the hub side)."""
        tip = np.asarray(frame.pixel_to_patient(*det.tip_px), float)
        tail = np.asarray(frame.pixel_to_patient(*det.shaft_px[0]), float)
        z = tail - tip
        return pose_from_z(tip, z if np.linalg.norm(z) > 1e-3 else -self.plan.axis)


class FluoroView:
    """Pulsed fluoroscopy of a live session (``op``: the session's ``FluoroOperator``)."""

    modality = "fluoro"

    def __init__(self, op):
        self.fl = op.fl
        self.carms = op.carms
        self.plan = op.plan
        self.hub_of = op.hub
        self.working = op.work
        self.confirm_view = op.pair[0]
        self.view = self.working
        self.meta: dict[str, Any] = {}
        for v in dict.fromkeys((self.working, self.confirm_view)):
            self.fl.technique(self.carms[v])  # projects and caches the pose (≈ 1 s)

    @property
    def carm(self):
        return self.carms[self.view]

    def use(self, view: str) -> None:
        """Swing the C-arm to a cached view (the working or the confirmation view)."""
        self.view = view

    def render(self, scene: Scene) -> Frame:
        return self.fl.frame(scene, "pulsed", self.carm)

    def transforms(self) -> dict[str, np.ndarray]:
        return {"CArmToReference": np.asarray(self.carm.DetectorToPatient, float)}

    def prior(self, frame: Frame, tip_guess_mm) -> NeedleDetection:
        """The planned needle (hub to the intended tip) projected."""
        return im.fl_prior(self.carm, self.hub_of(tip_guess_mm), tip_guess_mm)

    def _on_plan(self, frame: Frame, px, guess_mm) -> np.ndarray:
        """A 3D point for a detected pixel: the radiograph gives the ray from the focal
        spot; the depth along it is where it meets the planned line (the ray's point
        nearest to it) when the ray crosses that line at > 18° (sin² > 0.1), else the
        ray's point nearest to where the operator means the tip to be (``guess_mm``, the
        session engine's rule: down the beam the image holds no depth)."""
        o, d = im.ray_of(self.carm, frame, px)
        guess = np.asarray(guess_mm, float)
        da = im.depth_along((o, d), guess, self.plan.axis)
        if da is None or da[1] < 0.1:
            return im.nearest_on_ray(o, d, guess)
        return im.nearest_on_ray(o, d, guess + self.plan.axis * da[0])

    def tip_pose(self, frame: Frame, det: NeedleDetection, guess_mm) -> np.ndarray:
        """Detected tip as a needle-frame pose: tip and the detected shaft's other end
        placed by :meth:`_on_plan`; +z from the tip toward that end (the planned
        direction when the shaft projects to a dot)."""
        tip = self._on_plan(frame, det.tip_px, guess_mm)
        tail = self._on_plan(frame, det.shaft_px[0], guess_mm)
        z = tail - tip
        return pose_from_z(tip, z if np.linalg.norm(z) > 1.0 else -self.plan.axis)
