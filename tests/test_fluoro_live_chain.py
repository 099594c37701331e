"""The clinical live chain (fluoro/display_chain.py): motion-adaptive recursive filter,
last-image hold, and where the detector dose is measured."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.fluoro import CArmGeometry, Fluoroscope, FluoroSettings, named_view
from needleguide.fluoro.display_chain import noise_gain
from needleguide.fluoro.sequences import advance_sequence, plan_needle
from needleguide.scene import Scene


@pytest.fixture(scope="module")
def lumbar():
    from needleguide.anatomy.phantom import build_phantom

    return build_phantom("lumbar", seed=0, spacing_mm=3.0)


def _run(p, n=24, **kw):
    g = CArmGeometry(pixels=128)
    s = FluoroSettings(geometry=g, **kw)
    carm = named_view(p, "ap", "L4-L5", geometry_=g)
    fl = Fluoroscope(p, s, seed=1, carm=carm)
    sc = Scene(patient=p)
    return fl, carm, [fl.frame(sc.with_time(k / 15.0)).pixels for k in range(n)]


def test_recursive_filter_lowers_static_noise_as_a_nine_pulse_average(lumbar):
    """Static anatomy: the newest pulse weighs α = 0.2, so the noise variance falls to
    α / (2 − α) = 1/9 of one pulse's (σ × 0.33); motion detection at (3σ, 6σ) opens the
    filter for a few noise pixels only."""
    _, _, clean = _run(lumbar, noise=False)
    core = (slice(32, 96), slice(32, 96))
    sd = {}
    for key, kw in (("raw", {"temporal_filter": 1.0}), ("filt", {}),
                    ("lin", {"motion_detection": False})):
        _, _, fr = _run(lumbar, **kw)
        sd[key] = float((fr[-1] - clean[-1])[core].std())  # one realisation, in space
    assert 0.28 < sd["lin"] / sd["raw"] < 0.40
    assert sd["lin"] <= sd["filt"] < 1.15 * sd["lin"]


def test_a_large_change_passes_at_once(lumbar):
    """A needle that jumps 10 mm is shown where it is on the next pulse (no trail), while a
    plain recursive filter would leave (1 − α) of the old image."""
    g = CArmGeometry(pixels=128)
    carm = named_view(lumbar, "ap", "L4-L5", geometry_=g)
    nd, _ = plan_needle(lumbar, carm, np.asarray(carm.isocenter_mm))
    nd = nd.advanced(30.0)
    out = {}
    for key, kw in (("motion", {}), ("plain", {"motion_detection": False}),
                    ("raw", {"temporal_filter": 1.0})):
        fl = Fluoroscope(lumbar, FluoroSettings(geometry=g, noise=False, **kw), carm=carm)
        sc = Scene(patient=lumbar, needle=nd)
        for k in range(10):
            before = fl.frame(sc.with_time(k / 15.0)).pixels
        moved = sc.with_needle(nd.advanced(10.0)).with_time(10 / 15.0)
        out[key], out[key + "_before"] = fl.frame(moved).pixels, before
    change = np.abs(out["raw"] - out["raw_before"])
    big = change > 0.5 * change.max()  # where the needle moved
    assert big.sum() >= 3
    err_motion = np.abs(out["motion"] - out["raw"])[big].mean()
    err_plain = np.abs(out["plain"] - out["raw"])[big].mean()
    assert err_plain > 0.5 * change[big].mean()  # (1 − α) of the change trails behind
    assert err_motion < 0.1 * err_plain


def test_last_image_hold_has_no_dose_and_shows_the_last_pulse(lumbar):
    fl, carm, frames = _run(lumbar, n=6)
    held = fl.hold(1.0)
    assert held is not None and held.settings["last_image_hold"] is True
    assert held.dose.air_kerma_mgy == 0.0 and held.time_s == 1.0
    assert np.array_equal(held.pixels, frames[-1])
    fresh = Fluoroscope(lumbar, fl.settings, carm=carm)
    assert fresh.hold(0.0) is None  # nothing to hold before the first pulse
    nd, tgt = plan_needle(lumbar, carm, np.asarray(carm.isocenter_mm))
    seq = list(advance_sequence(fresh, Scene(patient=lumbar), nd, tgt, step_mm=5.0,
                                burst_pulses=2, hold_pulses=2, carm=carm))
    holds = [f for f in seq if f.settings.get("last_image_hold")]
    assert holds and all(f.dose.air_kerma_mgy == 0.0 for f in holds)


def test_live_frames_record_the_chain_and_the_detector_doses(lumbar):
    """Behind the grid the AEC holds its set point; in front of the grid (where a chamber
    on the detector measures the clinical 'detector dose', scatter included) the lumbar
    AP gets tens of nGy per pulse."""
    fl, carm, _ = _run(lumbar, n=2)
    f = fl.frame(Scene(patient=lumbar).with_time(2 / 15.0))
    st = f.settings
    assert st["temporal_filter"] == 0.2 and st["motion_detection"]["threshold_z"] == [3.0, 6.0]
    assert st["run_pulses"] == 3
    assert st["detector_air_kerma_ugy"] == pytest.approx(st["aec_setpoint_ugy"], rel=1e-3)
    assert 0.015 < st["detector_entrance_air_kerma_ugy"] < 0.06


def test_noise_gain_of_the_motion_smoothing():
    assert noise_gain(0.0, 0.0) == pytest.approx(1.0, abs=0.02)
    # a Gaussian of σ px passes 1 / (2 σ √π) of white noise's σ
    assert noise_gain(0.0, 3.0) == pytest.approx(1.0 / (2 * 3.0 * np.sqrt(np.pi)), rel=0.1)
