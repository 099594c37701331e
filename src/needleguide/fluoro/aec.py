"""Automatic exposure (dose-rate) control of the fluoroscope: kVp and mA per C-arm pose.

A C-arm's automatic brightness / dose-rate control (ABC/ADRC) measures the detector signal
in a central region and drives the generator along a control curve until the signal is at
its set point (AAPM Report 125, Rauch et al. 2012: kV, mA, pulse width and spectral filters
are driven by vendor-specific logic from the patient's attenuation; Wunderle et al., JACMP
2016;17(1):342, measured how differently vendors modulate the technique). The model here
keeps the pulse width and the filtration fixed and follows one standard "anti-isowatt"
curve in the (kVp, mA) plane (*assumption* in its numbers, settings ``aec_*``):

    (kvp_min, ma_min) → (kvp_min, ma_knee) → (kvp_max, ma_at_kvp_max) → (kvp_max, ma_max)

i.e. mA alone at the lowest kVp, then kVp and mA together, then mA alone at the highest
kVp. The generator steps kVp in whole kV and trims mA so that the set point is met exactly
(unless a limit is reached). The detector signal rises monotonically along the curve, so
the operating point is found by bisection over whole kV. Pulsed fluoroscopy is also held
below the regulatory air-kerma rate (21 CFR 1020.32: 88 mGy/min; C-arm measuring point
300 mm in front of the image receptor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from needleguide.fluoro.beam import BeamModel
from needleguide.fluoro.settings import FluoroSettings
from needleguide.fluoro.spectra import Spectrum, tube_spectrum

# 21 CFR 1020.32: a C-arm's air-kerma rate is measured 30 cm from the image receptor
REGULATION_POINT_BEFORE_DETECTOR_MM = 300.0


@dataclass(frozen=True)
class AECResult:
    kvp: float
    ma: float
    limited: str | None  # None | "max_technique" | "kerma_rate" | "min_technique"


def curve_ma(s: FluoroSettings, kvp: float) -> float:
    """mA of the anti-isowatt segment of the control curve at ``kvp``."""
    f = (kvp - s.aec_kvp_min) / (s.aec_kvp_max - s.aec_kvp_min)
    return s.aec_ma_knee + (s.aec_ma_at_kvp_max - s.aec_ma_knee) * min(max(f, 0.0), 1.0)


def max_ma_for_rate(s: FluoroSettings, kerma_ugy_per_mas_1m: float, sid_mm: float) -> float:
    """Highest tube current (mA) that keeps pulsed fluoroscopy below the regulatory air-kerma
    rate at the measuring point (300 mm in front of the detector)."""
    d = sid_mm - REGULATION_POINT_BEFORE_DETECTOR_MM
    ugy_per_s_per_ma = (kerma_ugy_per_mas_1m * (1000.0 / d) ** 2 * s.pulse_width_ms / 1000.0
                        * s.pulse_rate)
    return s.aec_max_kerma_rate_mgy_min * 1000.0 / 60.0 / ugy_per_s_per_ma


def solve(s: FluoroSettings, signal_ugy_per_mas: Callable[[int], float],
          kerma_ugy_per_mas_1m: Callable[[int], float], sid_mm: float) -> AECResult:
    """The operating point on the control curve.

    ``signal_ugy_per_mas(kvp)``: the AEC's detector air kerma per mAs at whole ``kvp`` for
    this pose (ROI mean behind the grid, scatter included); ``kerma_ugy_per_mas_1m(kvp)``:
    tube output free in air at 1 m (for the rate limit)."""
    pw = s.pulse_width_ms / 1000.0
    k0, k1 = int(round(s.aec_kvp_min)), int(round(s.aec_kvp_max))

    def need(k: int) -> float:  # mA that puts the ROI exactly at the set point
        return s.aec_setpoint_ugy / (pw * max(signal_ugy_per_mas(k), 1e-30))

    def cap(k: int, ma_curve: float) -> float:
        return min(ma_curve, max_ma_for_rate(s, kerma_ugy_per_mas_1m(k), sid_mm))

    # segment 1: mA alone at the lowest kVp
    m = need(k0)
    if m <= cap(k0, s.aec_ma_knee):
        if m < s.aec_ma_min:
            return AECResult(float(k0), s.aec_ma_min, "min_technique")
        return AECResult(float(k0), m, None)
    # segment 2: kVp and mA together; the first whole kV whose curve mA reaches the need
    # (need(k) / curve(k) and need(k) / rate cap(k) both fall with k: bisection is exact)
    if need(k1) <= cap(k1, curve_ma(s, k1)):
        lo, hi = k0, k1  # fails at lo, succeeds at hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if need(mid) <= cap(mid, curve_ma(s, mid)):
                hi = mid
            else:
                lo = mid
        return AECResult(float(hi), need(hi), None)
    # segment 3: mA alone at the highest kVp, up to the tube and regulatory limits
    m = need(k1)
    c_tube, c_rate = s.aec_ma_max, cap(k1, s.aec_ma_max)
    if m <= c_rate:
        return AECResult(float(k1), m, None)
    return AECResult(float(k1), c_rate, "kerma_rate" if c_rate < c_tube else "max_technique")


@lru_cache(maxsize=64)
def beam_for(kvp: float, added_al_mm: float, added_cu_mm: float, csi_um: float
             ) -> tuple[BeamModel, float, float]:
    """(BeamModel, HVL mm Al, mean energy keV) of a tube spectrum, cached per kVp and
    filtration (≈ 45 ms to build; the AEC asks for whole kV only)."""
    spec = tube_spectrum(kvp, added_al_mm, added_cu_mm)
    return (BeamModel(spec, csi_um=csi_um), round(spec.hvl_mm_al(), 3),
            round(spec.mean_energy_kev(), 2))


@dataclass(frozen=True)
class Technique:
    """Exposure technique of one pose: kVp, pulse tube current (mA), the beam model, and the
    AEC's measure — detector air kerma per mAs over the central ROI, behind the grid,
    scatter included (the air kerma of the unattenuated beam × Tp × mean(T + S))."""

    kvp: float
    ma: float
    aec: bool
    beam: BeamModel
    hvl_mm_al: float
    mean_energy_kev: float
    detector_ugy_per_mas: float
    limited: str | None = None
    entrance_ugy_per_mas: float = 0.0  # air kerma in front of the grid over the ROI

    @property
    def spectrum(self) -> Spectrum:
        return self.beam.spectrum


def choose_technique(s: FluoroSettings, g, a_soft: np.ndarray, a_bone: np.ndarray,
                     mask: np.ndarray, scatter_field: Callable) -> tuple:
    """Technique of a pose (C-arm geometry ``g``) and the anatomy's ln T, T and scatter
    at its kVp; ``scatter_field(t, ln_t, mask, detector_mm, beam)`` gives the scatter.

    The AEC measures the detector air kerma per mAs over the central square ROI
    (``aec_roi_fraction`` of the detector side, inside the collimated field): air kerma
    of the unattenuated beam at the detector × grid primary transmission × mean(T + S),
    and walks the control curve (fluoro/aec.py) to the set point."""
    n = g.pixels
    r = max(1, int(round(s.aec_roi_fraction * n / 2.0)))
    c = n // 2
    roi = (slice(max(c - r, 0), c + r), slice(max(c - r, 0), c + r))
    w = mask[roi]
    if w.sum() < 1.0:  # ROI collimated away: the whole field
        roi, w = (slice(None), slice(None)), mask
    geo = (1000.0 / g.sid_mm) ** 2 * s.primary_transmission
    evals: dict[float, tuple] = {}

    def at(kvp: float) -> tuple:
        if kvp not in evals:
            beam, hvl, mean_kev = beam_for(kvp, s.added_al_mm, s.added_cu_mm, s.csi_um)
            ln_t = beam.ln_transmission(a_soft, a_bone)
            t = np.exp(ln_t).astype(np.float32)
            scatter = scatter_field(t, ln_t, mask, g.detector_mm, beam)
            sig = float(np.sum((t[roi] + scatter[roi]) * w) / max(float(w.sum()), 1e-9))
            per_mas = beam.spectrum.kerma_ugy_per_mas_1m() * geo * sig
            evals[kvp] = (beam, hvl, mean_kev, ln_t, t, scatter, per_mas)
        return evals[kvp]

    if s.aec:
        res = solve(
            s, lambda k: at(float(k))[6],
            lambda k: beam_for(float(k), s.added_al_mm, s.added_cu_mm, s.csi_um)[0]
            .spectrum.kerma_ugy_per_mas_1m(), g.sid_mm)
        kvp, ma, limited = res.kvp, res.ma, res.limited
    else:
        kvp, ma, limited = float(s.kvp), s.ma, None
    beam, hvl, mean_kev, ln_t, t, scatter, per_mas = at(kvp)
    entrance = entrance_kerma_per_mas(s, g, beam, a_soft[roi], a_bone[roi], t[roi],
                                      scatter[roi], w)
    tech = Technique(kvp=kvp, ma=ma, aec=s.aec, beam=beam, hvl_mm_al=hvl,
                     mean_energy_kev=mean_kev, detector_ugy_per_mas=per_mas,
                     limited=limited, entrance_ugy_per_mas=entrance)
    return tech, ln_t, t, scatter


def entrance_kerma_per_mas(s: FluoroSettings, g, beam: BeamModel, a_soft: np.ndarray,
                           a_bone: np.ndarray, t: np.ndarray, scatter: np.ndarray,
                           w: np.ndarray) -> float:
    """Air kerma per mAs (µGy) at the detector's entrance, in front of the grid, averaged
    over the ROI with weights ``w``: the transmitted primary's own air kerma (the
    spectral sum weighted by air kerma, not by absorbed quanta: a hardened beam carries
    less kerma per quantum) plus the scatter that reaches the grid (the model's scatter
    behind the grid × Tp / Ts, given the primary's kerma per quantum). This is where a
    chamber on the detector housing measures the clinical "detector dose"."""
    from needleguide.fluoro.spectra import kerma_per_fluence_ugy

    spec = beam.spectrum.compressed(max_bins=32)
    kw = spec.fluence_per_mas_1m * kerma_per_fluence_ugy(np.maximum(spec.energies_kev, 1.0))
    ws = float(w.sum())
    if ws <= 0 or kw.sum() <= 0:
        return 0.0
    # ROI-mean primary transmission in air kerma (exact spectral sum over its pixels)
    sel = w.ravel() > 0
    att = (np.outer(np.asarray(a_soft, float).ravel()[sel], beam.mu_soft)
           + np.outer(np.asarray(a_bone, float).ravel()[sel], beam.mu_bone))
    tk = np.exp(-att) @ kw / kw.sum()
    wv = w.ravel()[sel]
    t_k = float(np.sum(tk * wv) / ws)
    t_q = float(np.sum(np.asarray(t, float).ravel()[sel] * wv) / ws)
    s_q = float(np.sum(np.asarray(scatter, float).ravel()[sel] * wv) / ws)
    s_front = s_q * s.primary_transmission / s.scatter_transmission
    k_free = beam.spectrum.kerma_ugy_per_mas_1m() * (1000.0 / g.sid_mm) ** 2
    return k_free * t_k * (1.0 + s_front / max(t_q, 1e-12))
