"""Words and numbers a user reads: report values rounded with units, views named right,
what the operator went by, evaluate's tables, the first run's compile notice."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from rich.console import Console

from needleguide.cli._evaluate_tables import print_tables
from needleguide.fluoro.carm import describe_angles
from needleguide.report import text
from needleguide.session import SessionConfig, SessionResult, StepRecord


def test_numbers_are_rounded_with_units_and_never_reprs():
    assert text.num(56.000000000000014, 0, "mm") == "56 mm"
    assert text.num(0.80775, 2) == "0.81"
    assert text.num(None, 1, "mm") == "—" and text.num(float("nan")) == "—"
    assert text.num(-0.001, 1, "°") == "0.0°" and text.num(-15.44, 1, "°") == "−15.4°"
    assert text.point_mm([37.571, -92.49, 28.5]) == "(37.6, −92.5, 28.5) mm"
    assert text.duration(190.5) == "3 min 10 s" and text.duration(42) == "42 s"
    views = text.views({"working": "sij-transverse", "probe": "curvilinear",
                        "frequency_mhz": 3.5, "depth_mm": 56.000000000000014,
                        "probe_tilt_deg": -20.0}, "us")
    assert views == ("sij-transverse view, curvilinear probe 3.5 MHz, depth 56 mm; probe "
                     "tilted −20° heel-toe to see into the joint")
    fl = text.views({"working": "oblique-right", "check": ["ap", "lateral"]}, "fluoro")
    assert fl == "working view oblique-right; check pair ap and lateral"
    conf = text.confirmation({"check_estimate_mm": [26.27, -34.81, 19.08],
                              "check_ray_gap_mm": 1.34, "check_depths_mm": [69.24, None],
                              "check_used": False,
                              "test_1": {"mode": "dsa", "view": "ap", "label": "epidural",
                                         "confidence": 0.6, "alarm_time_s": None,
                                         "true_compartment": "epidural",
                                         "true_vascular_share": 0.0}})
    joined = " ".join(conf)
    assert "None" not in joined and "{" not in joined and "no intravascular alarm" in joined


def test_a_lateral_is_called_lateral():
    assert describe_angles(90.0, 0.0) == "lateral (beam from the patient's left)"
    assert describe_angles(-89.7, 0.0) == "lateral (beam from the patient's right), 89.7°"
    assert describe_angles(30.0, 5.0) == "right oblique 30.0°, cranial 5.0°"
    assert describe_angles(0.0, 0.0) == "PA (spinal AP)"


def _result(found: list[bool]) -> SessionResult:
    steps = [StepRecord(t_s=float(i), pass_no=1, inserted_mm=5.0 * i, tip_to_target_mm=9.0,
                        est_offset_mm=None, detected=f, dap_gy_cm2=0.0, air_kerma_mgy=0.0)
             for i, f in enumerate(found)]
    return SessionResult(SessionConfig(), {}, [], steps, {})


def test_what_the_operator_went_by_is_said():
    assert _result([False] * 5).guidance_summary().startswith(
        "the needle analyser never found the needle: the operator went by the plan")
    assert "steered 2 of 3 steps; on the others" in _result([True, False, True]) \
        .guidance_summary()
    assert _result([True, True]).guidance_summary() == "the needle analyser steered all 2 steps"


def _printed(target: str, r: dict) -> str:
    buf = io.StringIO()
    print_tables(target, r, Console(file=buf, width=140))
    return buf.getvalue()


def test_evaluate_prints_tables_not_dicts():
    stats = {"median": 0.51234, "p95": None}
    mod = {"tip_error_mm": stats, "angle_error_deg": stats, "detection_rate": 0.8,
           "false_positive_rate": 0.0, "fps": 240.3, "tip_seen": {"rate": 0.5,
                                                                  "tip_error_mm": stats},
           "breakdown": {"angle_band": {"10-30": {"n_needle_frames": 4, "detection_rate": 1.0,
                                                  "tip_error_mm": stats}}}}
    out = _printed("needle", {"us": mod, "fluoro": mod, "baseline": {"us": mod, "fluoro": mod},
                              "seed": 1000, "held_out": False, "phantom_seeds": [100000]})
    assert "0.51 mm" in out and "80 %" in out and "10-30°" in out
    from needleguide.lab.eval_needle import SEEN_RUN_SEEDS

    assert "NOT held out" in out and f"--seed {max(SEEN_RUN_SEEDS) + 1}" in out
    conf = {"epidural": {"epidural": 2}, "intravascular": {"epidural": 1, "intravascular": 2}}
    side = {"accuracy": 0.75, "intravascular": {"sensitivity": 2 / 3, "specificity": None},
            "alarm_latency_s": stats, "alarm_latency_after_arrival_s": stats,
            "alarm_within_1s_of_arrival": 1.0, "confusion": conf}
    out += _printed("contrast", {"live": side, "dsa": side, "baseline": side, "cases": 5,
                                 "seeds": [3, 3], "held_out": False, "fps": 99.0})
    assert "67 %" in out and "seed 3:" in out
    for bad in ("{", "}", "None", "True", "False", "0.666"):
        assert bad not in out, bad


def test_a_cold_numba_cache_is_announced(tmp_path):
    code = ("from needleguide.cli._common import announce_compile, uncached_modules\n"
            "cold, total = uncached_modules()\nassert cold == total > 5, (cold, total)\n"
            "assert announce_compile()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "empty")},
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "first run: compiling numerical kernels" in r.stderr and "once" in r.stderr
