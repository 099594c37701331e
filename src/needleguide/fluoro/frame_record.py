"""What a fluoroscopy Frame records in its ``settings``: technique, exposure control,
filtration, detector dose (behind the grid, and at the detector's entrance), display,
grid and scatter, cumulative dose, C-arm pose, and the live chain's settings."""

from __future__ import annotations

from needleguide.fluoro.aec import Technique
from needleguide.fluoro.settings import FluoroSettings
from needleguide.frame import Dose


def acquisition_settings(s: FluoroSettings, tech: Technique, mode: str, mas: float,
                         detector_kerma_ugy: float, spr_20cm: float, total: Dose,
                         carm_settings: dict, extra: dict | None = None) -> dict:
    """The JSON-able settings of one frame. ``detector_air_kerma_ugy``: the AEC's measure
    (the signal behind the grid over its ROI, scatter included, in air kerma of the
    unattenuated beam); ``detector_entrance_air_kerma_ugy``: the air kerma in front of
    the grid over the same ROI (primary + scatter, of the transmitted spectrum) — where
    clinical detector doses are measured (docs/fluoro.md "Detector dose")."""
    aec = {"aec": tech.aec}
    if tech.aec:
        aec.update(aec_setpoint_ugy=s.aec_setpoint_ugy, aec_limited=tech.limited)
    entrance = tech.entrance_ugy_per_mas * mas
    return {
        "mode": mode, "kvp": tech.kvp,
        "ma": round(tech.ma, 4) if tech.aec else tech.ma, **aec,
        "pulse_width_ms": s.pulse_width_ms, "pulse_rate": s.pulse_rate, "mas": mas,
        "filtration": {"inherent_al_mm": 2.5, "added_al_mm": s.added_al_mm,
                       "added_cu_mm": s.added_cu_mm},
        "hvl_mm_al": tech.hvl_mm_al, "mean_energy_kev": tech.mean_energy_kev,
        "display": s.display, "edge_enhance": s.edge_enhance,
        "detector_air_kerma_ugy": round(detector_kerma_ugy, 5),
        "detector_entrance_air_kerma_ugy": round(entrance, 5),
        "anti_scatter_grid": ({"ratio": s.grid_ratio,
                               "primary_transmission": s.primary_transmission,
                               "scatter_transmission": s.scatter_transmission}
                              if s.grid else None),
        "scatter_to_primary_20cm_water": round(spr_20cm, 3),
        "cumulative_dose": {"air_kerma_mgy": total.air_kerma_mgy,
                            "dap_gy_cm2": total.dap_gy_cm2,
                            "fluoro_time_s": total.fluoro_time_s},
        **carm_settings, **(extra or {}),
    }
