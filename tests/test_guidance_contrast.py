"""Contrast-pattern analyser: the intravascular alarm (a vessel's early shape, its pieces,
a streaming ridge, the signal's saturation) vs extravascular accumulation, on real
simulated injections (one small phantom, 128² detector, live at 15 /s) and on synthetic
sequences."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.frame import Frame
from needleguide.guidance.contrast import INTRAVASCULAR, classify_sequence


def _frames(signal_at, n=24, fps=7.5, size=96, n_mask=3, seed=0, blob=None, noise=0.01):
    """Synthetic live frames (white-bone, 1 mm pixels): ``blob`` (default a disc of radius
    12 px) of contrast whose strength follows ``signal_at(t)`` (t from the first post-mask
    frame), with Gaussian noise of σ ``noise``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    if blob is None:
        blob = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < 12 ** 2).astype(np.float32)
    out = []
    for k in range(n):
        t = (k - n_mask) / fps
        a = signal_at(t) if k >= n_mask else 0.0
        img = 0.5 + a * blob + rng.normal(0, noise, blob.shape).astype(np.float32)
        out.append(Frame(pixels=img, spacing_mm=(1.0, 1.0), ImageToPatient=np.eye(4),
                         time_s=k / fps, modality="fluoro",
                         settings={"display": "white-bone", "temporal_filter": 1.0}))
    return out


def test_accumulating_contrast_is_not_intravascular():
    r = classify_sequence(_frames(lambda t: 0.05 * max(t, 0) + 0.01), "live", 3)
    assert r.alarm_time_s is None
    assert r.label not in INTRAVASCULAR


def test_compact_opacification_that_levels_off_is_intravascular():
    # no vessel shape: only the saturation backstop (in = out) can call it
    r = classify_sequence(_frames(lambda t: 0.1 * min(max(t, 0), 0.3) + 0.01), "live", 3)
    assert r.alarm_time_s is not None and r.intravascular
    assert r.alarm_cause == "saturation"


def test_two_dense_pieces_far_apart_are_a_vessel_at_once():
    # an artery dipping in and out of the beam: two compact dense pieces 20 mm apart,
    # the segment between them too faint to pass the threshold
    yy, xx = np.mgrid[:96, :96]
    pieces = (((yy - 40) ** 2 + (xx - 38) ** 2 < 9) | ((yy - 52) ** 2 + (xx - 54) ** 2 < 9))
    r = classify_sequence(_frames(lambda t: 0.08 if t > 0 else 0.0, n=12,
                                  blob=pieces.astype(np.float32)), "live", 3)
    assert r.alarm_cause == "pieces" and r.intravascular
    assert r.alarm_time_s - r.arrival_time_s <= 0.2  # two frames at 7.5 /s


def test_a_faint_streaming_line_is_a_vessel():
    # a vein: a 2 mm line 60 mm long, ~1.5 noise σ per pixel, nothing collects at the tip
    line = np.zeros((128, 128), np.float32)
    line[20:80, 63:65] = 1.0
    r = classify_sequence(_frames(lambda t: 0.015 if t > 0 else 0.0, n=12, size=128,
                                  blob=line), "live", 3)
    assert r.alarm_cause == "ridge" and r.intravascular
    assert r.alarm_ridge is not None and r.alarm_ridge[20:80, 60:68].any()


def test_noise_map_follows_the_quantum_noise():
    from needleguide.guidance.contrast import ContrastParams, noise_map

    rng = np.random.default_rng(1)
    sig = np.where(np.arange(96)[:, None] < 48, 0.02, 0.01) * np.ones((96, 96))
    fr = [Frame(pixels=(0.5 + rng.normal(0, 1, (96, 96)) * sig).astype(np.float32),
                spacing_mm=(1.0, 1.0), ImageToPatient=np.eye(4), time_s=k / 15.0,
                modality="fluoro") for k in range(8)]
    r = noise_map(fr, 1.0, ContrastParams())
    assert r is not None and 1.6 < np.median(r[5:30]) / np.median(r[66:90]) < 2.4
    assert noise_map(fr[:2], 1.0, ContrastParams()) is None


def test_ridge_ignores_an_edge_and_finds_a_line():
    from needleguide.guidance.contrast_line import ridge_length

    z = np.random.default_rng(2).normal(0, 1, (128, 128)).astype(np.float32)
    edge = z.copy()
    edge[:, 64:] += 6.0  # a collection's border: bright on one side only
    assert ridge_length(edge, 1.0, None)[0] < 10.0
    line = z.copy()
    line[20:100, 63:65] += 4.0
    length, mask = ridge_length(line, 1.0, None)
    assert length >= 50.0 and mask[30:90, 60:68].any()


def test_overlay_draws_the_alarm():
    from needleguide.guidance.contrast import draw_contrast

    fr = _frames(lambda t: 0.1 * min(max(t, 0), 0.3) + 0.01)
    r = classify_sequence(fr, "live", 3)
    k = min(range(len(fr)), key=lambda i: abs(fr[i].time_s - r.alarm_time_s))
    img = draw_contrast(fr[k], r)
    assert img.dtype == np.uint8 and img.shape[2] == 3
    assert (img[:30, :, 0] > 150).mean() > 0.5  # the red banner


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
        assert live.alarm_cause in ("shape", "pieces", "ridge", "saturation")
        assert case["arrival_s"] is not None
        assert live.alarm_time_s - case["arrival_s"] <= 1.0
        assert live.label == "intravascular_arterial"
    else:
        assert case["arrival_s"] is None
        assert live.label not in INTRAVASCULAR


def test_clipped_air_beside_the_body_does_not_shrink_the_noise():
    # half the field is air clipped at white (no noise, as beside a neck): the noise is
    # measured on the body only, so body noise is not taken for contrast, and an
    # accumulating collection in the body stays extravascular
    fr = _frames(lambda t: 0.05 * max(t, 0) + 0.01)
    out = []
    for f in fr:
        img = np.array(f.pixels)
        img[:, 60:] = 1.0
        out.append(Frame(pixels=img, spacing_mm=f.spacing_mm, ImageToPatient=f.ImageToPatient,
                         time_s=f.time_s, modality="fluoro", settings=f.settings))
    r = classify_sequence(out, "live", 3)
    assert r.alarm_time_s is None and r.label not in INTRAVASCULAR
    assert r.mask is not None and r.mask[:, :48].sum() < 0.5 * r.mask.size / 2
