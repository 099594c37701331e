"""Contrast-pattern analyser: the intravascular alarm (a vessel's early shape, the signal's
saturation) vs extravascular accumulation, on real simulated injections (one small
phantom, 128² detector, live at 15 /s) and on synthetic sequences."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.frame import Frame
from needleguide.guidance.contrast import INTRAVASCULAR, classify_sequence


def _frames(signal_at, n=24, fps=7.5, size=96, n_mask=3, seed=0):
    """Synthetic live frames (white-bone): a disc of contrast whose strength follows
    ``signal_at(t)`` (t from the first post-mask frame), with Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    blob = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < 12 ** 2).astype(np.float32)
    out = []
    for k in range(n):
        t = (k - n_mask) / fps
        a = signal_at(t) if k >= n_mask else 0.0
        img = 0.5 + a * blob + rng.normal(0, 0.01, blob.shape).astype(np.float32)
        out.append(Frame(pixels=img, spacing_mm=(1.0, 1.0), ImageToPatient=np.eye(4),
                         time_s=k / fps, modality="fluoro",
                         settings={"display": "white-bone", "temporal_filter": 1.0}))
    return out


def test_accumulating_contrast_is_not_intravascular():
    r = classify_sequence(_frames(lambda t: 0.05 * max(t, 0) + 0.01), "live", 3)
    assert r.alarm_time_s is None
    assert r.label not in INTRAVASCULAR


def test_plateau_raises_the_alarm_soon_after_arrival():
    r = classify_sequence(_frames(lambda t: 0.1 * min(max(t, 0), 0.3) + 0.01), "live", 3)
    assert r.alarm_time_s is not None and r.intravascular
    assert r.alarm_time_s - r.arrival_time_s < 1.0


def test_no_contrast_no_alarm():
    r = classify_sequence(_frames(lambda t: 0.0), "live", 3)
    assert r.alarm_time_s is None and r.arrival_time_s is None


def test_bad_mode_rejected():
    with pytest.raises(ValueError):
        classify_sequence(_frames(lambda t: 0.0, n=4), "cine", 3)


@pytest.fixture(scope="session")
def lumbar_small():
    from needleguide.anatomy.phantom import build_phantom

    return build_phantom("lumbar", bmi=24.0, degeneration=0, seed=7, spacing_mm=2.0)


@pytest.mark.parametrize("pattern,expect_alarm", [("arterial", True), ("epidural", False)])
def test_simulated_injection(lumbar_small, pattern, expect_alarm):
    from needleguide.guidance.eval_contrast import make_case

    case = make_case(lumbar_small, pattern, "L4-L5", "right", seed=7, pixels=128)
    assert all(f.truth is not None for f in case["live"])
    live = classify_sequence([f.without_truth() for f in case["live"]], "live",
                             case["n_mask"])
    assert (live.alarm_time_s is not None) == expect_alarm
    assert live.arrival_time_s is not None
    if expect_alarm:
        # the goal: the alarm within 1 s of the contrast reaching the vessel (truth side)
        assert case["arrival_s"] is not None
        assert live.alarm_time_s - case["arrival_s"] <= 1.0
        assert live.label == "intravascular_arterial"
    else:
        assert case["arrival_s"] is None
        assert live.label not in INTRAVASCULAR
