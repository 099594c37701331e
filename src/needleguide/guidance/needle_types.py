"""Data types of the needle analyser: tunable parameters and the detection result."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NeedleParams:
    """Tunable parameters (set on the tuning seeds; see docs/guidance_needle.md).

    k_candidates: ridge pixels voting in the Hough transform; gate_deg: orientation gate;
    snr_threshold: score at confidence 0.5; snr_scale: logistic width; min_length_mm:
    shortest accepted shaft; gap_mm: largest gap inside a shaft run; side_mm: distance of
    the side profiles from the line; run_k: contrast (× noise σ) for a sample to support
    the shaft; prior_band_px: half width of the search band around a prior line;
    prior_gate_deg: the fluoroscopy axis gate is lifted this close to a prior's direction;
    end_z (0: off), end_weak_frac, end_beyond_mm, end_bg_z: a step short of the most distal
    one is the tip when its echo is seen to end (``tip_step_z`` ≥ end_z), at most
    end_weak_frac of the end_beyond_mm (mm) beyond it has weak support and the background
    beside the line steps by < end_bg_z σ there; ext_long_mm (0: off), ext_long_k: a second
    distal extension on the contrast smoothed over ext_long_mm (mm), above the parallel
    lines' level by ext_long_k σ."""

    k_candidates: int = 1500
    gate_deg: int = 4
    snr_threshold: float = 12.0
    snr_scale: float = 2.0
    min_length_mm: float = 3.0
    gap_mm: float = 2.0
    side_mm: float = 1.2
    run_k: float = 1.5
    prior_band_px: float = 25.0
    prior_gate_deg: float = 6.0
    n_peaks: int = 6
    min_angle_deg: float = 12.0
    weak_k: float = 1.5
    parallel_penalty: float = 0.0
    shadow_mm: float = 4.0
    shadow_ratio: float = 0.6
    free_end_mm: float = 3.0
    peak_frac: float = 0.4
    intensity_power: float = 2.0
    band_average: bool = False
    local_noise: bool = False
    step_k: float = 6.0
    ext_gap_mm: float = 5.0
    axis_gate_deg: float = 0.0
    entry_gap_mm: float = 8.0
    n_full: int = 3
    border_penalty: float = 1.0
    linear_tip: bool = False
    hm_back_mm: float = 3.0
    hm_ahead_mm: float = 1.0
    hm_box_mm: float = 0.5
    tip_offset_mm: float = 0.0
    entry_depth_mm: float = 1e9
    entry_reach_mm: float = 0.0
    bend_penalty: float = 1.0
    max_sagitta_mm: float = 1e9
    bow_penalty: float = 0.3
    bend_frac: float = 0.5
    bend_angles_deg: tuple[float, ...] = (8.0, 14.0, 20.0, 26.0)
    border_frac: float = 0.04
    n_screen: int = 99
    scale: int = 2
    min_sigma_px: float = 0.8
    noise_norm: bool = False
    weight_cap_q: float = 1.0
    tip_visible_z: float = 0.0
    parallel_bg: bool = False
    end_z: float = 0.0
    end_weak_frac: float = 0.5
    end_beyond_mm: float = 10.0
    end_bg_z: float = 2.5
    ext_long_mm: float = 0.0
    ext_long_k: float = 2.0


@dataclass(frozen=True)
class NeedleDetection:
    """Result of :func:`detect_needle`.

    found: a needle was detected; tip_px (col, row) pixels; tip_image_mm (x, y) mm in the
    image plane; tip_patient_mm (R, A, S) mm via ``ImageToPatient`` (the detector plane in
    fluoroscopy); shaft_px ((col, row) proximal end, (col, row) tip end); angle_deg: shaft
    orientation 0–180° from the image horizontal, counter-clockwise on screen (for US
    with the probe face on top, the insertion angle to the skin line is
    ``min(angle_deg, 180 - angle_deg)``); confidence 0..1; score: the raw SNR;
    tip_visible: the echo is seen to end at the tip (US: a sharp step down of the shaft's
    echo, ``extra['tip_step_z']`` ≥ ``NeedleParams.tip_visible_z``; always true in
    fluoroscopy). When false in US the needle is found but its tip lies somewhere beyond
    the reported point (the distal shaft has faded into the speckle): do not advance on it."""

    found: bool
    tip_px: tuple[float, float] | None = None
    tip_image_mm: tuple[float, float] | None = None
    tip_patient_mm: tuple[float, float, float] | None = None
    shaft_px: tuple[tuple[float, float], tuple[float, float]] | None = None
    angle_deg: float | None = None
    confidence: float = 0.0
    score: float = 0.0
    extra: dict = field(default_factory=dict)
    tip_visible: bool = False

    @property
    def insertion_angle_deg(self) -> float | None:
        """Angle to the image horizontal folded to 0–90° (US: to the skin line)."""
        if self.angle_deg is None:
            return None
        return float(min(self.angle_deg, 180.0 - self.angle_deg))


NOT_FOUND = NeedleDetection(False)
