"""The fluoroscope: scene + C-arm pose → Frame (pixels, geometry, settings, dose, truth).

Per C-arm pose (cached): the anatomy's two basis areal densities by the Joseph projector,
their polyenergetic transmission through the beam-hardening table, the scatter field and
the display window. Per frame: needle (steel + hub chords) and iodine (sub-volume march)
added with the exact spectral sum on the pixels they touch; absorbed quanta; focal-spot
blur; Poisson noise (seeded per frame); scintillator blur; log; window; edge enhancement;
collimator. Doses per exposure are counted in a cumulative :class:`Dose`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.fluoro.beam import EXTRA, BeamModel
from needleguide.fluoro.carm import CArm
from needleguide.fluoro.materials import density_g_cm3
from needleguide.fluoro.noise import poisson_counts
from needleguide.fluoro.overlays import iodine_mg_cm2, needle_paths_mm
from needleguide.fluoro.projector import ProjectionVolume
from needleguide.fluoro.settings import FluoroSettings
from needleguide.fluoro.spectra import tube_spectrum
from needleguide.fluoro.volume import basis_volume
from needleguide.frame import Dose, Frame, FrameTruth
from needleguide.scene.scene import Scene

MODES = ("pulsed", "spot", "dsa")
RUN_GAP_S = 0.5  # a longer pause between pulses starts a new run (lag filter restarts)


@dataclass
class _PoseCache:
    a_soft: np.ndarray  # g/cm²
    a_bone: np.ndarray
    ln_t: np.ndarray  # float64 ln T of the anatomy
    scatter_rel: np.ndarray  # scatter in units of the unattenuated primary
    window: tuple[float, float]  # (lo, hi) of the log image for the display
    low_pass: np.ndarray  # large-scale part of the anatomy's log image (range compression)
    t_anat: np.ndarray  # float32 transmission of the anatomy
    t_centre: float  # median transmission over the central quarter (detector dose)
    flat64: tuple[np.ndarray, np.ndarray]  # a_soft, a_bone flat float64 (exact patches)
    field: np.ndarray  # float32 collimator weight 0..1 (soft edge)


@dataclass
class Exposure:
    """One exposure's raw result: log image ℓ = −ln(N / N0), quanta and dose."""

    log_image: np.ndarray
    quanta: np.ndarray
    dose: Dose
    mas: float
    detector_kerma_ugy: float


class Fluoroscope:
    """A C-arm fluoroscope looking at one patient.

    ``frame(scene, mode)`` images the scene at the current :attr:`carm` pose; ``carm`` can
    be changed at will (poses are cached). ``dose_total`` accumulates every exposure.
    """

    def __init__(self, patient: Patient, settings: FluoroSettings | None = None,
                 seed: int = 0, carm: CArm | None = None):
        self.patient = patient
        self.settings = settings or FluoroSettings()
        self.seed = int(seed)
        self.carm = carm or CArm(geometry=self.settings.geometry)
        s = self.settings
        self.spectrum = tube_spectrum(s.kvp, s.added_al_mm, s.added_cu_mm)
        self.beam = BeamModel(self.spectrum, csi_um=s.csi_um)
        self._hvl = round(self.spectrum.hvl_mm_al(), 3)
        self._volume: ProjectionVolume | None = None
        self._poses: dict[tuple, _PoseCache] = {}
        self.dose_total = Dose()
        self.exposures = 0
        # (pose key, filtered log image, scene time) of the last pulsed frame
        self._last: tuple[tuple, np.ndarray, float] | None = None

    # ---- dose --------------------------------------------------------------------------
    def exposure_mas(self, mode: str = "pulsed") -> float:
        """Tube load (mAs) of one exposure in ``mode``."""
        s = self.settings
        if mode == "pulsed":
            return s.pulse_mas
        if mode == "spot":
            return s.spot_mas
        if mode == "dsa":
            return s.dsa_dose_factor * s.pulse_mas * s.pulse_rate / s.dsa_rate_fps
        raise ValueError(f"mode: {mode!r}; choose one of {MODES}")

    def air_kerma_mgy(self, mas: float, distance_mm: float) -> float:
        """Free-in-air kerma (mGy) at ``distance_mm`` from the focal spot for ``mas``."""
        return self.spectrum.kerma_ugy_per_mas_1m() * mas * (1000.0 / distance_mm) ** 2 / 1000.0

    def exposure_dose(self, mode: str = "pulsed", carm: CArm | None = None) -> Dose:
        """Dose of one exposure: reference air kerma (IEC interventional reference point,
        150 mm before the isocentre), DAP (= K_ref × field area there), fluoro time
        (pulse interval for pulsed fluoroscopy; 0 for spot and DSA acquisitions)."""
        carm = carm or self.carm
        d_ref = carm.geometry.reference_point_mm
        k = self.air_kerma_mgy(self.exposure_mas(mode), d_ref)
        dap = k / 1000.0 * carm.field_area_cm2_at(d_ref)
        t = 1.0 / self.settings.pulse_rate if mode == "pulsed" else 0.0
        return Dose(air_kerma_mgy=k, dap_gy_cm2=dap, fluoro_time_s=t)

    def reset_dose(self) -> None:
        self.dose_total = Dose()
        self.exposures = 0

    # ---- pose cache ------------------------------------------------------------------------
    def volume(self) -> ProjectionVolume:
        if self._volume is None:
            codes, lut = basis_volume(self.patient, cortex_mm=self.settings.cortex_mm)
            self._volume = ProjectionVolume(codes, self.patient.VoxelToPatient, lut=lut)
        return self._volume

    @staticmethod
    def _key(carm: CArm) -> tuple:
        return (carm.isocenter_mm, round(carm.orbit_deg, 6), round(carm.tilt_deg, 6),
                carm.geometry)

    def _pose(self, carm: CArm) -> _PoseCache:
        key = self._key(carm)
        if key in self._poses:
            return self._poses[key]
        g = carm.geometry
        n = g.pixels
        src, p00, dd = carm.pixel_rays()
        li = self.volume().project(src, p00, dd[0], dd[1], n, n)  # g/cm³ × mm
        a_soft = np.maximum(li[..., 0] / 10.0, 0.0)
        a_bone = np.maximum(li[..., 1] / 10.0, 0.0)
        ln_t = self.beam.ln_transmission(a_soft, a_bone)
        t = np.exp(ln_t).astype(np.float32)
        mask = carm.collimator_mask().astype(np.float32)
        scatter = self.scatter_field(t, ln_t, mask, g.detector_mm)
        fieldw = cv2.GaussianBlur(mask, (0, 0), 1.0)
        ell = -np.log(np.maximum(t + scatter, 1e-12)).astype(np.float32)
        low, (lo, hi) = self._display_window(ell, mask, g.pixel_mm)
        pc = _PoseCache(a_soft=a_soft.astype(np.float32), a_bone=a_bone.astype(np.float32),
                        ln_t=ln_t, scatter_rel=scatter.astype(np.float32),
                        window=(float(lo), float(hi)), low_pass=low, field=fieldw,
                        t_anat=t, t_centre=float(np.median(t[n * 3 // 8:n * 5 // 8,
                                                            n * 3 // 8:n * 5 // 8])),
                        flat64=(a_soft.astype(np.float64).ravel(),
                                a_bone.astype(np.float64).ravel()))
        if len(self._poses) > 8:
            self._poses.pop(next(iter(self._poses)))
        self._poses[key] = pc
        return pc

    def _display_window(self, ell: np.ndarray, mask: np.ndarray, pixel_mm: float
                        ) -> tuple[np.ndarray, tuple[float, float]]:
        """Automatic range compression and window/level of a pose, from the anatomy only.

        Body = collimated pixels whose noise-free signal is attenuated by more than
        ``body_log_threshold`` (the raw beam beside the body and thin skin folds are out).
        Range compression (clinical unsharp-mask "harmonisation"): the body's large-scale
        log image (normalised Gaussian of σ ``range_compression_mm``, so air does not drag
        it) is removed by ``range_compression``. Window: ``window_percentiles`` of the
        compressed log image over the body eroded by 10 mm (no skin-edge ramp), widened by
        10 % below and 5 % above."""
        s = self.settings
        body = ((mask > 0) & (ell > s.body_log_threshold)).astype(np.float32)
        if body.sum() < 0.02 * body.size:  # no patient in the field: use the whole field
            body = (mask > 0).astype(np.float32)
        sig = s.range_compression_mm / pixel_mm
        num = cv2.GaussianBlur(ell * body, (0, 0), sig)
        den = cv2.GaussianBlur(body, (0, 0), sig)
        low = num / np.maximum(den, np.float32(1e-3))
        inb = body > 0
        low = np.float32(s.range_compression) * (low - np.float32(np.mean(low[inb])))
        # the window ignores the skin-edge ramp: body eroded by 10 mm (if enough is left)
        r = max(1, int(round(10.0 / pixel_mm)))
        core = cv2.erode(body, cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                         (2 * r + 1, 2 * r + 1))) > 0
        if core.sum() < 0.02 * core.size:
            core = inb
        comp = (ell - low)[core]
        lo, hi = np.percentile(comp, s.window_percentiles) if comp.size else (0.0, 1.0)
        lo, hi = lo - 0.10 * (hi - lo), hi + 0.05 * (hi - lo)
        return low.astype(np.float32), (float(lo), float(max(hi, lo + 1e-3)))

    def scatter_field(self, t: np.ndarray, ln_t: np.ndarray, mask: np.ndarray,
                      detector_mm: float) -> np.ndarray:
        """Scatter at the detector behind the grid, in units of the unattenuated primary
        behind the grid (so SPR = scatter / T).

        Source: the primary photons that interact in the patient and still leave it, per
        pixel T·ln(1/T) inside the collimated field (scatter-kernel superposition form;
        air beside the body, T = 1, scatters nothing); spread by a two-Gaussian kernel on a
        64² grid with zero outside the field; × ``scatter_coefficient`` (no-grid SPR per
        unit ln attenuation, wide field); × grid scatter / primary transmission."""
        s = self.settings
        n = t.shape[0]
        if s.scatter_to_primary == 0.0 or s.scatter_coefficient == 0.0:
            return np.zeros_like(t, dtype=np.float32)
        a = s.scatter_exit_exponent
        tau = np.maximum(-ln_t, 0.0)
        src = (np.power(t, 1.0 - a) * tau * mask).astype(np.float32)
        m = 64
        small = cv2.resize(src, (m, m), interpolation=cv2.INTER_AREA)
        px = detector_mm / m
        (s1, s2), w1 = s.scatter_kernel_mm, s.scatter_kernel_mix
        blur = np.float32(w1) * cv2.GaussianBlur(small, (0, 0), s1 / px,
                                                 borderType=cv2.BORDER_CONSTANT) \
            + np.float32(1.0 - w1) * cv2.GaussianBlur(small, (0, 0), s2 / px,
                                                      borderType=cv2.BORDER_CONSTANT)
        scatter = cv2.resize(blur, (n, n), interpolation=cv2.INTER_LINEAR)
        k = s.scatter_coefficient * s.scatter_transmission / s.primary_transmission
        if s.scatter_to_primary is not None:
            k = s.scatter_to_primary / self.reference_tau()
        if a > 0:
            scatter *= np.power(t, a).astype(np.float32)
        return (scatter * np.float32(k) * mask).astype(np.float32)

    def reference_tau(self) -> float:
        """ln(1/T) of 20 g/cm² of soft tissue (≈ 20 cm water) for this beam."""
        return float(-self.beam.ln_transmission(np.array([20.0]), np.array([0.0]))[0])

    def scatter_to_primary_slab(self) -> float:
        """Model SPR behind the grid for a wide 20 cm water slab (no field-edge loss)."""
        s = self.settings
        if s.scatter_to_primary is not None:
            return float(s.scatter_to_primary)
        return s.scatter_coefficient * self.reference_tau() * s.scatter_transmission \
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
            att = flat[0] * np.float32(self.beam.mu_extra[0].max()) \
                + flat[1] * np.float32(self.beam.mu_extra[1].max()) \
                + flat[2] * np.float32(self.beam.mu_extra[2].max())
            idx = np.flatnonzero(att > 1e-4)
            if idx.size:
                lnp = np.empty(n * n, np.float64)
                self.beam.patch(idx, flat64[0], flat64[1], flat, lnp)
                t_img = t_img.copy()
                t_img.ravel()[idx] = np.exp(lnp[idx])
        mas = self.exposure_mas(mode)
        # absorbed quanta per pixel without patient, behind the grid
        q0 = np.float32(self.beam.weights.sum() / 100.0 * (1000.0 / g.sid_mm) ** 2 * mas
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
        self.dose_total = self.dose_total + dose
        self.exposures += 1
        k_det = self.air_kerma_mgy(mas, g.sid_mm) * 1000.0 * pc.t_centre
        return Exposure(log_image, counts, dose, mas, k_det)

    def display(self, log_image: np.ndarray, carm: CArm | None = None) -> np.ndarray:
        """Window/level (pose window), edge enhancement, display polarity, collimator."""
        pc = self._pose(carm or self.carm)
        lo, hi = pc.window
        v = (log_image - pc.low_pass - np.float32(lo)) / np.float32(hi - lo)
        v = cv2.GaussianBlur(v, (0, 0), 0.7)  # spatial noise reduction
        k = self.settings.edge_enhance
        if k > 0:
            # unsharp mask; two 9-px box passes ≈ Gaussian σ 3.7 px at O(1) per pixel
            low = cv2.blur(cv2.blur(v, (9, 9)), (9, 9))
            v = v + np.float32(k) * (v - low)
        v = np.clip(v, 0.0, 1.0)
        if self.settings.display == "black-bone":
            v = 1.0 - v
        return (v * pc.field).astype(np.float32)

    def frame(self, scene: Scene, mode: str = "pulsed", carm: CArm | None = None) -> Frame:
        """One displayed frame (pulsed fluoroscopy pulse or spot image) of ``scene``."""
        carm = carm or self.carm
        exp = self.expose(scene, mode, carm)
        img = exp.log_image
        a = self.settings.temporal_filter
        key = self._key(carm)
        if mode == "pulsed" and a < 1.0:
            # the recursive filter runs within one fluoroscopy run: same pose, scene time not
            # going backwards and no gap longer than RUN_GAP_S (pedal released: a new run)
            last = self._last
            if last is not None and last[0] == key and \
                    0.0 <= scene.time_s - last[2] <= RUN_GAP_S:
                img = a * img + (1.0 - a) * last[1]
            self._last = (key, img, scene.time_s)
        else:
            self._last = None
        return self._frame(scene, carm, self.display(img, carm), exp, mode)

    def _frame(self, scene: Scene, carm: CArm, pixels: np.ndarray, exp: Exposure,
               mode: str, extra_settings: dict | None = None) -> Frame:
        g = carm.geometry
        settings = {
            "mode": mode, "kvp": self.settings.kvp, "ma": self.settings.ma,
            "pulse_width_ms": self.settings.pulse_width_ms,
            "pulse_rate": self.settings.pulse_rate, "mas": exp.mas,
            "filtration": {"inherent_al_mm": 2.5, "added_al_mm": self.settings.added_al_mm,
                           "added_cu_mm": self.settings.added_cu_mm},
            "hvl_mm_al": self._hvl,
            "mean_energy_kev": round(self.spectrum.mean_energy_kev(), 2),
            "display": self.settings.display, "edge_enhance": self.settings.edge_enhance,
            "detector_air_kerma_ugy": round(exp.detector_kerma_ugy, 5),
            "anti_scatter_grid": ({"ratio": self.settings.grid_ratio,
                                   "primary_transmission": self.settings.primary_transmission,
                                   "scatter_transmission": self.settings.scatter_transmission}
                                  if self.settings.grid else None),
            "scatter_to_primary_20cm_water": round(self.scatter_to_primary_slab(), 3),
            "cumulative_dose": {"air_kerma_mgy": self.dose_total.air_kerma_mgy,
                                "dap_gy_cm2": self.dose_total.dap_gy_cm2,
                                "fluoro_time_s": self.dose_total.fluoro_time_s},
            **carm.settings(),
            **(extra_settings or {}),
        }
        return Frame(pixels=pixels, spacing_mm=(g.pixel_mm, g.pixel_mm),
                     ImageToPatient=carm.ImageToPatient, time_s=scene.time_s,
                     modality="fluoro", settings=settings, dose=exp.dose,
                     truth=needle_truth(carm, scene))


def needle_truth(carm: CArm, scene: Scene) -> FrameTruth:
    """Projected needle tip and visible shaft (skin entry → tip) of the scene."""
    nd = scene.needle
    if nd is None:
        return FrameTruth()
    n = carm.geometry.pixels
    tip_px = carm.project(nd.tip)
    entry_px = carm.project(nd.hub_mm)
    inside = bool(np.all((tip_px >= -0.5) & (tip_px <= n - 0.5)))
    return FrameTruth(tip_px=(float(tip_px[0]), float(tip_px[1])),
                      tip_mm=tuple(float(x) for x in nd.tip),
                      shaft_px=((float(entry_px[0]), float(entry_px[1])),
                                (float(tip_px[0]), float(tip_px[1]))),
                      needle_visible=inside)
