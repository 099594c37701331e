"""The tunable parameters of ``guidance.needle_motion`` (their meaning: that module's
docstring; their values: tuning runs, docs/guidance_needle.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MotionParams:
    """Tunable parameters (tuning seeds; docs/guidance_needle.md). Lengths in mm at the
    image plane, lags in frames."""

    scale: int = 2
    average: int = 2
    lags: tuple[int, ...] = (2, 4)
    window_mm: float = 2.0
    bands: int = 8
    edge_bands: int = 4
    depth_bands: int = 4
    noise_d: float = 0.6
    dark_floor: float = 0.02
    sig_floor: float = 1e-3
    smooth_mm: float = 0.6
    z_on: float = 15.0
    tip_z: float = 250.0
    track_z: float = 60.0
    track_ahead_mm: float = 6.0
    min_mass: float = 20.0
    shape_min_mm: float = 6.0
    shape_aspect: float = 3.0
    min_angle_deg: float = 12.0
    max_angle_deg: float = 80.0
    ray_step_deg: float = 0.5
    ray_from_mm: float = 1.0
    ray_to_mm: float = 40.0
    ray_side_mm: float = 1.0
    ray_shift_mm: float = 3.0
    ray_shift_step_mm: float = 0.5
    ray_shift_gain: float = 0.2
    ray_shift_deg: float = 2.0
    ray_shift_dt_mm: float = 0.5
    ray_shift_top: int = 3
    band_mm: float = 1.0
    edge_rel: float = 0.5
    peak_bias_mm: float = -0.2
    edge_bias_mm: float = 3.0
    step_k: float = 3.0
    step_mm: float = 1.5
    step_band_mm: float = 0.3
    step_back_mm: float = 4.0
    step_ahead_mm: float = 2.0
    step_bias_mm: float = -0.65
    refine_k: float = 3.0
    refine_bias_mm: float = -0.5
    refine_tie: float = 0.1
    refine_sig_q: float = 0.25
    refine_deg: float = 8.0
    refine_deg_step: float = 2.0
    refine_mm: float = 1.5
    refine_mm_step: float = 0.5
    refine_back_mm: float = 1.5
    refine_ahead_mm: float = 2.0
    line_points: int = 60
    line_span_mm: float = 3.0
    line_tol_mm: float = 1.0
    trace_tol_deg: float = 5.0
    held_ahead_mm: float = 2.0
    line_mm: float = 1.0
    min_trail_mm: float = 4.0
    max_tip_speed_mm_s: float = 30.0
    jump_mm: float = 3.0
    reacquire_frames: int = 13
    keep_band_mm: float = 2.0
    tip_rel_kept: float = 0.1
    hold_frames: int = 15
    held_off_frames: int = 3
    confirm_frames: int = 2
    max_shift_px: float = 4.0
    min_shift_px: float = 0.5
    path_decay: float = 0.97
    path_min_mm: float = 2.0
    path_ratio: float = 3.0
    path_frames: int = 5
    path_tol_deg: float = 20.0
    beam_tol_deg: float = 15.0
    shadow_ahead_mm: float = 3.0
    shadow_level: float = 0.05
    acquire_max_mm: float = 18.0
    beam_every: int = 10
    tip_smooth: float = 0.25

    def __post_init__(self) -> None:
        for name, ok, rule in (
                ("ray_shift_mm", self.ray_shift_mm >= 0, "≥ 0 mm"),
                ("ray_shift_step_mm", self.ray_shift_step_mm > 0, "> 0 mm"),
                ("ray_shift_deg", self.ray_shift_deg >= self.ray_step_deg,
                 f"≥ ray_step_deg ({self.ray_step_deg}°)"),
                ("ray_shift_dt_mm", self.ray_shift_dt_mm > 0, "> 0 mm"),
                ("ray_shift_top", self.ray_shift_top >= 1, "≥ 1"),
                ("held_off_frames", self.held_off_frames >= 0, "≥ 0 (0: off)"),
                ("trace_tol_deg", 0 <= self.trace_tol_deg < 90, "0 … 90° (0: off)"),
                ("shadow_ahead_mm", self.shadow_ahead_mm >= 0, "≥ 0 mm (0: off)"),
                ("shadow_level", 0 <= self.shadow_level <= 1, "0 … 1 (of full scale)"),
                ("acquire_max_mm", self.acquire_max_mm >= 0, "≥ 0 mm (0: off)"),
                ("tip_smooth", 0 <= self.tip_smooth < 1, "0 … < 1 (0: off)")):
            if not ok:
                raise ValueError(f"MotionParams.{name} = {getattr(self, name)}: must be {rule}")


__all__ = ["MotionParams"]
