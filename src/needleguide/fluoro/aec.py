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

from needleguide.fluoro.settings import FluoroSettings

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
