"""The fluoroscope: scene + C-arm pose → Frame (pixels, geometry, settings, dose, truth).

Per C-arm pose (cached): the anatomy's two basis areal densities by the Joseph projector,
the exposure technique (automatic exposure control: kVp and mA from the anatomy in the
central ROI, fluoro/aec.py; or the manual kvp/ma), the polyenergetic transmission through
that kVp's beam-hardening table, the scatter field and the display window. Per frame:
needle (steel + hub chords) and iodine (sub-volume march) added with the exact spectral
sum on the pixels they touch (same beam); absorbed quanta; focal-spot blur; Poisson noise
(seeded per frame); scintillator blur; log; window; edge enhancement; collimator. Every
exposure is booked in the irradiation event log (``events``, ``dose_total``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.fluoro import aec as aec_control
from needleguide.fluoro.aec import Technique, beam_for
from needleguide.fluoro.beam import EXTRA, BeamModel
from needleguide.fluoro.carm import CArm
from needleguide.fluoro.display_chain import (  # noqa: F401 (RUN_GAP_S re-exported)
    RUN_GAP_S,
    RunState,
    chain_settings,
    continues,
    display_pixels,
    recursive_step,
)
from needleguide.fluoro.dose_events import ExposureLog
from needleguide.fluoro.field import field_mask
from needleguide.fluoro.frame_record import acquisition_settings
from needleguide.fluoro.materials import density_g_cm3
from needleguide.fluoro.noise import poisson_counts
from needleguide.fluoro.overlays import iodine_mg_cm2, needle_paths_mm
from needleguide.fluoro.processing import display_window, reference_tau, scatter_field
from needleguide.fluoro.projector import ProjectionVolume
from needleguide.fluoro.settings import FluoroSettings
from needleguide.fluoro.spectra import Spectrum
from needleguide.fluoro.table import table_basis_g_cm2
from needleguide.fluoro.truth import needle_truth
from needleguide.fluoro.volume import basis_volume
from needleguide.frame import Dose, Frame
from needleguide.scene.scene import Scene

MODES = ("pulsed", "spot", "dsa")
# settings read at every exposure / display: changing them keeps the cached poses
PER_FRAME_SETTINGS = frozenset({"ma", "spot_mas", "dsa_dose_factor", "dsa_rate_fps",
                                "display", "edge_enhance", "temporal_filter", "noise",
                                "motion_detection", "motion_threshold_z", "motion_sigma_mm"})


@dataclass
class _PoseCache:
    a_soft: np.ndarray  # g/cm²
    a_bone: np.ndarray
    ln_t: np.ndarray  # float64 ln T of the anatomy
    scatter_rel: np.ndarray  # scatter in units of the unattenuated primary
    window: tuple[float, float]  # (lo, hi) of the log image for the display
    low_pass: np.ndarray  # large-scale part of the anatomy's log image (range compression)
    t_anat: np.ndarray  # float32 transmission of the anatomy
    tech: Technique  # kVp / mA (AEC or manual) and beam of this pose
    flat64: tuple[np.ndarray, np.ndarray]  # a_soft, a_bone flat float64 (exact patches)
    field: np.ndarray  # float32 collimator weight 0..1 (soft edge)
    field_fraction: float = 1.0  # irradiated share of the collimated field (scan shutters)


@dataclass
class Exposure:
    """One exposure's raw result: log image ℓ = −ln(N / N0), quanta and dose."""

    log_image: np.ndarray
    quanta: np.ndarray
    dose: Dose
    mas: float
    detector_kerma_ugy: float
    q0: float = 1.0  # absorbed quanta per pixel of the unattenuated beam behind the grid


class Fluoroscope:
    """A C-arm fluoroscope looking at one patient.

    ``frame(scene, mode)`` images the scene at the current :attr:`carm` pose; ``carm`` can
    be changed at will (poses are cached). ``events``, ``run``: fluoro/dose_events.py.
    """

    def __init__(self, patient: Patient, settings: FluoroSettings | None = None,
                 seed: int = 0, carm: CArm | None = None):
        self.patient = patient
        self.settings = settings or FluoroSettings()
        self.seed = int(seed)
        self.carm = carm or CArm(geometry=self.settings.geometry)
        self._volume: ProjectionVolume | None = None
        self._skey: tuple | None = None  # (settings object, its pose-relevant fields)
        self._poses: dict[tuple, _PoseCache] = {}
        self.log = ExposureLog()  # irradiation events (dose_total is their sum)
        self.run, self.events = self.log.run, self.log.events  # events: cleared in place
        self.exposures = 0
        # the current fluoroscopy run (motion-adaptive recursive filter, last-image hold)
        self._run: RunState | None = None
        self._last_frame: Frame | None = None

    # ---- technique -----------------------------------------------------------------------
    def _manual_beam(self) -> tuple[BeamModel, float, float]:
        s = self.settings
        return beam_for(float(s.kvp), s.added_al_mm, s.added_cu_mm, s.csi_um)

    def technique(self, carm: CArm | None = None) -> Technique:
        """kVp, mA and beam at pose ``carm`` (default: the current pose): chosen by the AEC
        from the anatomy (``settings.aec``), or the manual ``kvp`` / ``ma``."""
        tech = self._pose(carm or self.carm).tech
        if not tech.aec and tech.ma != self.settings.ma:  # manual mA changed since
            tech = dataclasses.replace(tech, ma=self.settings.ma)
        return tech

    def _beam_at(self, carm: CArm | None) -> BeamModel:
        # manual mode needs no projection: the beam is the settings' kVp on every pose
        return self.technique(carm).beam if self.settings.aec else self._manual_beam()[0]

    @property
    def beam(self) -> BeamModel:
        """Beam model (spectrum + detector) of the current pose's technique."""
        return self._beam_at(self.carm)

    @property
    def spectrum(self) -> Spectrum:
        """Tube spectrum of the current pose's technique."""
        return self.beam.spectrum

    # ---- dose --------------------------------------------------------------------------
    def pulse_mas(self, carm: CArm | None = None) -> float:
        """Tube load (mAs) of one fluoroscopy pulse at pose ``carm`` (AEC or manual)."""
        s = self.settings
        ma = self.technique(carm).ma if s.aec else s.ma
        return ma * s.pulse_width_ms / 1000.0

    def exposure_mas(self, mode: str = "pulsed", carm: CArm | None = None) -> float:
        """Tube load (mAs) of one exposure in ``mode`` at pose ``carm``. Spot and DSA keep
        their ratio to the fluoroscopy pulse at the same kVp: a spot is
        spot_mas / (ma × pulse_width) pulses (the manual technique's ratio; 12.5 by
        default), a DSA frame dsa_dose_factor × pulse_rate / dsa_rate_fps pulses."""
        s = self.settings
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r}; choose one of {MODES}")
        pulse = self.pulse_mas(carm)
        if mode == "pulsed":
            return pulse
        if mode == "spot":
            return s.spot_mas * pulse / s.pulse_mas
        return s.dsa_dose_factor * pulse * s.pulse_rate / s.dsa_rate_fps

    def air_kerma_mgy(self, mas: float, distance_mm: float, carm: CArm | None = None
                      ) -> float:
        """Free-in-air kerma (mGy) at ``distance_mm`` from the focal spot for ``mas`` at the
        kVp of pose ``carm`` (default: the current pose)."""
        k1 = self._beam_at(carm).spectrum.kerma_ugy_per_mas_1m()
        return k1 * mas * (1000.0 / distance_mm) ** 2 / 1000.0

    def exposure_dose(self, mode: str = "pulsed", carm: CArm | None = None) -> Dose:
        """Dose of one exposure: reference air kerma (IEC interventional reference point,
        150 mm before the isocentre), DAP (= K_ref × irradiated field area there: the
        collimator, narrowed by the shutters to a CT's scanned range), fluoro time
        (pulse interval for pulsed fluoroscopy; 0 for spot and DSA acquisitions)."""
        carm = carm or self.carm
        d_ref = carm.geometry.reference_point_mm
        k = self.air_kerma_mgy(self.exposure_mas(mode, carm), d_ref, carm)
        dap = k / 1000.0 * carm.field_area_cm2_at(d_ref) * self._pose(carm).field_fraction
        t = 1.0 / self.settings.pulse_rate if mode == "pulsed" else 0.0
        return Dose(air_kerma_mgy=k, dap_gy_cm2=dap, fluoro_time_s=t)

    @property
    def dose_total(self) -> Dose:
        return self.log.total

    def reset_dose(self) -> None:
        self.log.clear()
        self.exposures = 0

    # ---- pose cache ------------------------------------------------------------------------
    def volume(self) -> ProjectionVolume:
        if self._volume is None:
            codes, lut, aff = basis_volume(self.patient, cortex_mm=self.settings.cortex_mm)
            self._volume = ProjectionVolume(codes, aff, lut=lut)
        return self._volume

    def anatomy_areal_g_cm2(self, carm: CArm) -> tuple[np.ndarray, np.ndarray]:
        """Soft-tissue- and bone-equivalent areal densities (g/cm²) of everything fixed in
        the room along each pixel's ray at pose ``carm`` (patient anatomy)."""
        n = carm.geometry.pixels
        src, p00, dd = carm.pixel_rays()
        vol = self.volume()
        li = vol.project(src, p00, dd[0], dd[1], n, n)  # g/cm³ × mm
        a_soft = np.maximum(li[..., 0] / 10.0, 0.0)
        a_bone = np.maximum(li[..., 1] / 10.0, 0.0)
        s = self.settings
        if s.table and s.table_g_cm2 > 0 and vol.bounds_mm() is not None:
            ts, tb = table_basis_g_cm2(src, p00, dd, n, vol.bounds_mm(), s)
            a_soft, a_bone = a_soft + ts, a_bone + tb
        return a_soft, a_bone

    @staticmethod
    def _key(carm: CArm) -> tuple:
        return (carm.isocenter_mm, round(carm.orbit_deg, 6), round(carm.tilt_deg, 6),
                carm.geometry)

    def _settings_key(self) -> tuple:
        """The settings a pose depends on (technique, beam, AEC curve, scatter, table,
        window): a pose is recomputed when they change (``fl.settings`` may be replaced);
        the per-frame ones (manual mA, display, noise, spot / DSA loads) do not count."""
        s = self.settings
        if self._skey is None or self._skey[0] is not s:
            self._skey = (s, tuple(getattr(s, f) for f in type(s).model_fields
                                   if f not in PER_FRAME_SETTINGS))
        return self._skey[1]

    def _pose(self, carm: CArm) -> _PoseCache:
        key = (self._key(carm), self._settings_key())
        if key in self._poses:
            return self._poses[key]
        g = carm.geometry
        a_soft, a_bone = self.anatomy_areal_g_cm2(carm)
        mask = field_mask(carm, self.patient).astype(np.float32)
        tech, ln_t, t, scatter = aec_control.choose_technique(
            self.settings, g, a_soft, a_bone, mask, self.scatter_field)
        fieldw = cv2.GaussianBlur(mask, (0, 0), 1.0)
        ell = -np.log(np.maximum(t + scatter, 1e-12)).astype(np.float32)
        low, (lo, hi) = display_window(ell, mask, g.pixel_mm, self.settings)
        pc = _PoseCache(a_soft=a_soft.astype(np.float32), a_bone=a_bone.astype(np.float32),
                        ln_t=ln_t, scatter_rel=scatter.astype(np.float32),
                        window=(float(lo), float(hi)), low_pass=low, field=fieldw,
                        t_anat=t, tech=tech,
                        flat64=(a_soft.astype(np.float64).ravel(),
                                a_bone.astype(np.float64).ravel()),
                        field_fraction=float(mask.sum()
                                             / max(carm.collimator_mask().sum(), 1)))
        if len(self._poses) > 8:
            self._poses.pop(next(iter(self._poses)))
        self._poses[key] = pc
        return pc

    def scatter_field(self, t: np.ndarray, ln_t: np.ndarray, mask: np.ndarray,
                      detector_mm: float, beam: BeamModel | None = None) -> np.ndarray:
        """Scatter behind the grid in units of the unattenuated primary
        (``processing.scatter_field``); ``beam``: the pose's (default: current)."""
        if beam is None and self.settings.scatter_to_primary is not None:
            beam = self.beam
        return scatter_field(t, ln_t, mask, detector_mm, self.settings, beam)

    def reference_tau(self, beam: BeamModel | None = None) -> float:
        """ln(1/T) of 20 g/cm² of soft tissue for ``beam`` (default: the current pose's)."""
        return reference_tau(beam or self.beam)

    def scatter_to_primary_slab(self, beam: BeamModel | None = None) -> float:
        """Model SPR behind the grid for a wide 20 cm water slab (no field-edge loss)."""
        s = self.settings
        if s.scatter_to_primary is not None:
            return float(s.scatter_to_primary)
        return s.scatter_coefficient * self.reference_tau(beam) * s.scatter_transmission \
            / s.primary_transmission

    # ---- imaging --------------------------------------------------------------------------
    def expose(self, scene: Scene, mode: str = "pulsed", carm: CArm | None = None,
               shift_px: tuple[float, float] = (0.0, 0.0), frame_index: int | None = None
               ) -> Exposure:
        """Acquire one exposure (counts its dose). ``shift_px`` (dx, dy) translates the
        anatomy on the detector (patient motion, for DSA misregistration)."""
        carm = carm or self.carm
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r}; choose one of {MODES}")
        pc = self._pose(carm)
        g = carm.geometry
        n = g.pixels
        s = self.settings
        beam = pc.tech.beam
        t_img = pc.t_anat
        ln_t, flat64 = pc.ln_t, pc.flat64
        if shift_px != (0.0, 0.0):
            m = np.float32([[1, 0, shift_px[0]], [0, 1, shift_px[1]]])
            warp = [cv2.warpAffine(np.ascontiguousarray(x, np.float32), m, (n, n),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                    for x in (ln_t.astype(np.float32), pc.a_soft, pc.a_bone)]
            ln_t = warp[0].astype(np.float64)
            t_img = np.exp(warp[0])
            flat64 = (warp[1].astype(np.float64).ravel(), warp[2].astype(np.float64).ravel())
        extra = None
        if scene.needle is not None:
            extra = np.zeros((len(EXTRA), n, n), np.float32)
            needle_paths_mm(carm, scene.needle, out=extra[:2])
            extra[0] *= np.float32(density_g_cm3("steel") / 10.0)  # mm → g/cm²
            extra[1] *= np.float32(density_g_cm3("polycarbonate") / 10.0)
        field = scene.injectate.iodine_mg_ml(scene.time_s) if scene.injectate else None
        if field is not None:
            if extra is None:
                extra = np.zeros((len(EXTRA), n, n), np.float32)
            iodine_mg_cm2(carm, field, out=extra[2])
            extra[2] *= np.float32(1e-3)  # mg → g
        if extra is not None:
            flat = extra.reshape(len(EXTRA), -1)
            # pixels where the extra materials attenuate by more than 1e-4 (ln units)
            att = flat[0] * np.float32(beam.mu_extra[0].max()) \
                + flat[1] * np.float32(beam.mu_extra[1].max()) \
                + flat[2] * np.float32(beam.mu_extra[2].max())
            idx = np.flatnonzero(att > 1e-4)
            if idx.size:
                lnp = np.empty(n * n, np.float64)
                beam.patch(idx, flat64[0], flat64[1], flat, lnp)
                t_img = t_img.copy()
                t_img.ravel()[idx] = np.exp(lnp[idx])
        mas = self.exposure_mas(mode, carm)
        # absorbed quanta per pixel without patient, behind the grid
        q0 = np.float32(beam.weights.sum() / 100.0 * (1000.0 / g.sid_mm) ** 2 * mas
                        * g.pixel_mm ** 2 * s.primary_transmission)
        mean = (t_img + pc.scatter_rel) * q0
        sig_fs = (g.focal_spot_mm / 2.355) * (g.sid_mm - g.sod_mm) / g.sod_mm / g.pixel_mm
        if sig_fs > 0.15:
            mean = cv2.GaussianBlur(mean, (0, 0), sig_fs)
        if s.noise:
            idx = self.exposures if frame_index is None else frame_index
            counts = poisson_counts(mean, self.seed, idx)
        else:
            counts = mean
        sig_det = g.detector_blur_mm / g.pixel_mm
        if sig_det > 0.15:
            counts = cv2.GaussianBlur(counts, (0, 0), sig_det)
        np.maximum(counts, np.float32(0.5), out=counts)
        counts *= np.float32(1.0) / q0
        log_image = np.log(counts)
        np.negative(log_image, out=log_image)
        dose = self.exposure_dose(mode, carm)
        self.log.record(self, carm, mode, dose, mas, scene.time_s)
        self.exposures += 1
        k_det = pc.tech.detector_ugy_per_mas * mas  # the AEC's ROI measure (µGy)
        return Exposure(log_image, counts, dose, mas, k_det, float(q0))

    def display(self, log_image: np.ndarray, carm: CArm | None = None) -> np.ndarray:
        """Window/level (pose window), spatial noise reduction, edge enhancement, display
        polarity, collimator (``display_chain.display_pixels``)."""
        pc = self._pose(carm or self.carm)
        return display_pixels(log_image, pc.low_pass, pc.window, pc.field, self.settings)

    def frame(self, scene: Scene, mode: str = "pulsed", carm: CArm | None = None) -> Frame:
        """One displayed frame (pulsed fluoroscopy pulse or spot image) of ``scene``.

        Pulses of one run (same pose, scene time not going backwards, no pause longer
        than ``RUN_GAP_S``) pass through the motion-adaptive recursive filter
        (fluoro/display_chain.py); spot images and a new run start afresh."""
        carm = carm or self.carm
        exp = self.expose(scene, mode, carm)
        img = exp.log_image
        s = self.settings
        key = self._key(carm)
        extra = None
        if mode == "pulsed":
            run = self._run
            if s.temporal_filter < 1.0 and continues(run, key, scene.time_s):
                pc = self._pose(carm)
                quanta = (pc.t_anat + pc.scatter_rel) * np.float32(exp.q0)
                g = carm.geometry
                img = recursive_step(run.image, img, quanta, s, g.pixel_mm,
                                     g.detector_blur_mm / g.pixel_mm)
                self._run = RunState(key, img, scene.time_s, run.pulses + 1)
            else:
                self._run = RunState(key, img, scene.time_s)
            extra = {**chain_settings(s), "run_pulses": self._run.pulses}
        else:
            self._run = None
        fr = self._frame(scene, carm, self.display(img, carm), exp, mode, extra)
        if self._run is not None:
            self._run.pixels = fr.pixels
        return fr

    def hold(self, time_s: float) -> Frame | None:
        """Last-image hold: the last displayed pulse of the current run (the filtered
        image stays on the monitor after the pedal is released), at ``time_s``, with no
        dose and ``settings['last_image_hold'] = True``; None before any pulse."""
        run = self._run
        if run is None or self._last_frame is None:
            return None
        f = self._last_frame
        return dataclasses.replace(f, time_s=float(time_s), dose=Dose(),
                                   settings={**f.settings, "last_image_hold": True})

    def _frame(self, scene: Scene, carm: CArm, pixels: np.ndarray, exp: Exposure,
               mode: str, extra_settings: dict | None = None) -> Frame:
        g = carm.geometry
        tech = self.technique(carm)
        settings = acquisition_settings(
            self.settings, tech, mode, exp.mas, exp.detector_kerma_ugy,
            self.scatter_to_primary_slab(tech.beam), self.dose_total, carm.settings(),
            extra_settings)
        fr = Frame(pixels=pixels, spacing_mm=(g.pixel_mm, g.pixel_mm),
                   ImageToPatient=carm.ImageToPatient, time_s=scene.time_s,
                   modality="fluoro", settings=settings, dose=exp.dose,
                   truth=needle_truth(carm, scene))
        self._last_frame = fr if mode == "pulsed" else None
        return fr
