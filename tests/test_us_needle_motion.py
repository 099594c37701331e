"""Issue 16 part 4: tissue dragged by the needle, and the needle tip from motion."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide.errors import UserError
from needleguide.frame import Frame
from needleguide.guidance.needle_motion import MotionParams, NeedleMotion
from needleguide.guidance.needle_motion_maps import motion_z
from needleguide.scene import Needle
from needleguide.scene.needle import TISSUE_DRAG_MAX_MM, next_tissue_drag_mm
from needleguide.us.tissue_motion import (
    CUT,
    DRAG_WIDTH_MM,
    PUSH_LENGTH_MM,
    _exp_neg,
    displaced,
    drag_params,
)

Q = TISSUE_DRAG_MAX_MM


def _needle(**kw) -> Needle:
    return Needle.from_entry_and_target((0.0, 0.0, 0.0), (0.0, 40.0, 0.0), length_mm=89.0,
                                        **kw)


def test_stick_slip_drag_state():
    nd = _needle()
    assert nd.tissue_drag_mm == 0.0
    a = nd.advanced(-5.0)
    assert a.tissue_drag_mm == -Q  # withdrawn: the tissue follows, then the needle slips
    b = a.advanced(0.4)
    assert b.tissue_drag_mm == pytest.approx(-Q + 0.4)
    c = b.advanced(3.0)
    assert c.tissue_drag_mm == Q and c.inserted_length_mm == pytest.approx(38.4)
    # a needle rebuilt from its pose carries the drag over, unless it was turned
    d = _needle(inserted_mm=39.0).moved_from(c)
    assert d.tissue_drag_mm == Q
    turned = Needle.from_entry_and_target((0, 0, 0), (10.0, 40.0, 0.0)).moved_from(c)
    assert turned.tissue_drag_mm == 0.0
    with pytest.raises(UserError, match="tissue_drag_mm"):
        dataclasses.replace(nd, tissue_drag_mm=5.0)


@given(st.floats(-Q, Q), st.floats(-20.0, 20.0))
def test_drag_stays_within_its_limit(q, move):
    r = next_tissue_drag_mm(q, move)
    assert -Q <= r <= Q
    assert r == pytest.approx(float(np.clip(q + move, -Q, Q)))


@settings(max_examples=60, deadline=None)
@given(st.floats(-30.0, 10.0), st.floats(0.0, 12.0))
def test_displacement_field(s, rho):
    """Along the axis (+y here), q × radial Gaussian behind the tip, × exp(−s/λ) ahead,
    none beyond the skin entry; never more than q."""
    tip, axis = np.array([0.0, 40.0, 0.0]), np.array([0.0, 1.0, 0.0])
    p = drag_params(tip, axis, 40.0, 0.8)
    x, y, z = rho, 40.0 + s, 0.0
    xs, ys, zs = displaced(x, y, z, p)
    assert xs == pytest.approx(x) and zs == pytest.approx(z)
    u = y - ys
    assert 0.0 <= u <= 0.8 + 1e-9
    want = 0.0 if s < -40.0 else 0.8 * math.exp(-rho**2 / (2 * DRAG_WIDTH_MM**2)
                                                - max(s, 0.0) / PUSH_LENGTH_MM)
    assert u == pytest.approx(want, rel=1e-7, abs=0.8 * 9.2e-4)  # cut where |u| < q·9e-4
    if s < -40.0 or rho > 7.5:
        assert u == pytest.approx(0.0, abs=1e-6)
    elif s <= 0.0 and rho == 0.0:
        assert u == pytest.approx(0.8)
    assert displaced(x, y, z, drag_params(tip, axis, 40.0, 0.0)) == (x, y, z)


def test_fast_exponential_of_the_field():
    a = np.linspace(0.0, CUT, 20001)
    got = np.array([_exp_neg(v) for v in a])
    assert np.max(np.abs(got / np.exp(-a) - 1.0)) < 3e-9


def _frame(px: np.ndarray, t: float = 0.0) -> Frame:
    return Frame(pixels=px, spacing_mm=(0.2, 0.2), ImageToPatient=np.eye(4), time_s=t,
                 modality="us")


def _speckle(rng, shape=(200, 200)) -> np.ndarray:
    import cv2

    z = rng.rayleigh(1.0, shape).astype(np.float32)
    return cv2.GaussianBlur(z, (0, 0), 1.2)


def test_motion_map_finds_a_moved_patch_only():
    rng = np.random.default_rng(3)
    base = _speckle(rng)
    base = 0.2 + 0.6 * base / base.max()
    a = base + rng.normal(0, 0.01, base.shape).astype(np.float32)
    b = base + rng.normal(0, 0.01, base.shape).astype(np.float32)
    b[80:110, 90:120] = base[84:114, 90:120]  # tissue moved by 4 px (0.8 mm at 0.2 mm)
    prm = MotionParams()
    z_still = motion_z([a], base + rng.normal(0, 0.01, base.shape).astype(np.float32), 0.2,
                       prm)
    z = motion_z([a], b, 0.2, prm)
    assert float(z[85:105, 95:115].mean()) > 20.0 * max(float(np.median(z)), 0.5)
    assert float(z_still.max()) < prm.tip_z


@pytest.fixture(scope="module")
def sequences():
    """One lumbar motion sequence (advance, pause, jiggle, hold) and its needle-free twin,
    rendered by the real imager (seeded)."""
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.lab.needle_motion_cases import us_motion_sequences

    p = build_phantom("lumbar", bmi=25, degeneration=1, seed=31, spacing_mm=1.5)
    return us_motion_sequences(p, "lumbar", np.random.default_rng(31), 31, 1)


def test_the_tip_from_motion_on_a_rendered_sequence(sequences):
    pos, neg = sequences
    assert pos.has_needle and not neg.has_needle
    assert {"advance", "pause", "jiggle", "hold"} == set(pos.phases)
    nm, errs, scored = NeedleMotion(), {}, 0
    for c in pos.cases:
        d = nm.update(c.frame.without_truth())  # the analyser never sees the truth
        if c.params["scored"] and c.params["frame"] >= 6:
            scored += 1
            if d.found:
                t = c.frame.truth.tip_px
                errs.setdefault(c.params["phase"], []).append(
                    math.hypot(d.tip_px[0] - t[0], d.tip_px[1] - t[1]) * c.frame.spacing_mm[0])
    found = sum(len(v) for v in errs.values())
    assert scored > 20 and found >= 0.7 * scored
    assert float(np.median(errs["advance"])) < 2.0  # the advancing tip
    assert float(np.median(np.concatenate(list(errs.values())))) < 5.0
    nm = NeedleMotion()
    assert not any(nm.update(c.frame.without_truth()).found for c in neg.cases)


def test_kept_means_give_the_same_motion(sequences):
    """The frames' means and box sums kept from frame to frame (a still probe) give the z
    maps computed afresh every frame, bit for bit."""

    class NoMemo(dict):
        def __setitem__(self, key, value):  # keeps nothing
            pass

    pos, _ = sequences
    kept, fresh = NeedleMotion(), NeedleMotion()
    fresh._memo = NoMemo()
    for c in pos.cases:
        f = c.frame.without_truth()
        a, b = kept.update(f), fresh.update(f)
        assert a.tip_px == b.tip_px
        assert (kept.z is None) == (fresh.z is None)
        if kept.z is not None:
            assert np.array_equal(kept.z, fresh.z)
    assert len(kept._memo) > 0


def test_a_still_needle_is_not_seen_by_motion(sequences):
    """The same frame over and over (a still needle, a still probe): nothing moves."""
    pos, _ = sequences
    nm = NeedleMotion()
    f = pos.cases[-1].frame.without_truth()
    assert not any(nm.update(dataclasses.replace(f, time_s=i / 15)).found for i in range(10))


def test_evaluate_sequences_keys(sequences):
    from needleguide.lab.eval_needle_motion import evaluate_sequences

    r = evaluate_sequences(sequences)
    for k in ("motion", "single_frame", "tracked"):
        assert {"tip_error_mm", "detection_rate", "false_positive_rate",
                "tip_within_2mm_rate", "breakdown"} <= set(r[k])
    assert r["motion"]["detection_rate"] > r["single_frame"]["detection_rate"]
    assert sum(r["motion"]["tip_from"].values()) > 0



def test_the_shown_tip_is_smoothed_and_the_found_one_goes_on(sequences):
    """``tip_smooth``: the tip shown is the one found this frame moved ``tip_smooth`` of
    the way to the one shown for the frame before (the shaft's end with it; none after a
    frame without the needle); the analyser goes on from the tips it found, so with the
    smoothing off it finds the same tips, frame by frame."""
    pos, _ = sequences
    w = 0.25
    raw = NeedleMotion(MotionParams(tip_smooth=0.0))
    shown = NeedleMotion(MotionParams(tip_smooth=w))
    prev, smoothed_frames = None, 0
    for c in pos.cases:
        f = c.frame.without_truth()
        a, b = raw.update(f), shown.update(f)
        assert a.found == b.found
        if not a.found:
            prev = None
            continue
        if prev is None:
            want = a.tip_px
        else:
            assert b.extra["tip_found_px"] == a.tip_px
            want = tuple((1 - w) * x + w * y for x, y in zip(a.tip_px, prev, strict=True))
        assert np.allclose(b.tip_px, want, atol=1e-9) and b.shaft_px[1] == b.tip_px
        smoothed_frames += prev is not None and math.dist(a.tip_px, prev) > 1.0
        prev = b.tip_px
    assert smoothed_frames > 5  # the smoothing moved the tips


@pytest.mark.parametrize("reacquire", [0, 5])
def test_a_tip_advancing_off_the_known_needle_takes_over(sequences, reacquire):
    """A needle found, then a compact patch that keeps changing 15+ mm off its line (an
    advancing tip elsewhere): ignored (the needle held) until ``reacquire_frames`` such
    frames, then taken as the needle (its line came from something else); never with 0."""
    found, at_patch = _patch_off_the_needle(sequences, MotionParams(
        reacquire_frames=reacquire, held_off_frames=0))
    assert all(found)
    assert not any(at_patch[:reacquire + 1])
    assert all(at_patch[-4:]) if reacquire else not any(at_patch)


def test_a_held_tip_in_doubt_is_not_reported(sequences):
    """While a tip advances off the needle's line, the needle found before is held for
    ``held_off_frames`` − 1 frames, then no longer reported (it may not have been the
    needle) until the new tip takes over at ``reacquire_frames``."""
    prm = MotionParams(reacquire_frames=6, held_off_frames=3)
    found, at_patch = _patch_off_the_needle(sequences, prm)
    k = found.index(False)  # (the patch shows in the motion map after the lags)
    assert k >= prm.held_off_frames - 1 and not any(at_patch[:k])  # the needle, held
    n = prm.reacquire_frames - prm.held_off_frames
    assert not any(found[k:k + n])  # in doubt
    assert all(at_patch[k + n:])  # taken over
    found, at_patch = _patch_off_the_needle(sequences, dataclasses.replace(
        prm, held_off_frames=0))
    assert all(found[:k + n]) and not any(at_patch[:k + n])  # without the rule: held


def _patch_off_the_needle(sequences, prm: MotionParams) -> tuple[list, list]:
    """A needle found, then 12 frames of a compact patch that keeps changing 15+ mm off
    its line: (found, tip at the patch) per frame."""
    pos, _ = sequences
    nm = NeedleMotion(prm)
    for c in pos.cases:
        f = c.frame.without_truth()
        d = nm.update(f)
        if nm._seen >= 3:
            break
    sp, w = f.spacing_mm[0], f.pixels.shape[1]
    cx = int(w * 0.75) if d.tip_px[0] < w / 2 else int(w * 0.25)
    cy, r = int(d.tip_px[1]), int(1.5 / sp)
    assert abs(cx - d.tip_px[0]) * sp > 15.0
    rng = np.random.default_rng(0)
    found, at_patch = [], []
    for i in range(12):
        px = f.pixels.copy()
        px[cy - r:cy + r, cx - r:cx + r] = rng.integers(40, 200, (2 * r, 2 * r), np.uint8)
        d = nm.update(dataclasses.replace(f, pixels=px, time_s=f.time_s + (i + 1) / 15))
        found.append(bool(d.found))
        at_patch.append(d.found and math.hypot(d.tip_px[0] - cx, d.tip_px[1] - cy) * sp < 2.0)
    return found, at_patch


@pytest.mark.parametrize("shape", [(9, 9), (64, 64), (300, 200, 3)])
def test_odd_frames_give_no_needle(shape):
    """Tiny, colour, blank and noise frames in turn: no detection, no failure."""
    rng = np.random.default_rng(0)
    nm = NeedleMotion()
    for i in range(10):
        px = rng.integers(0, 255, shape, dtype=np.uint8) if i % 2 else np.zeros(shape, np.uint8)
        assert not nm.update(_frame(px, i / 15)).found


@pytest.mark.parametrize("dx,dy", [(0.0, 0.0), (0.3, 0.0), (0.6, 0.0), (-0.7, 0.4),
                                   (1.5, -2.0), (3.0, 1.0)])
def test_tremor_shift_of_a_speckle_image(dx, dy):
    """The whole-image shift (phase correlation, with its quarter-size pre-check): a real
    shift ≥ ``min_px`` is measured to 0.15 px; one below it (or none) gives 0."""
    import cv2

    from needleguide.guidance.needle_motion_maps import aligned, tremor_shift

    rng = np.random.default_rng(4)
    a = _speckle(rng, (256, 256))
    a = (a / a.max()).astype(np.float32)
    b = aligned(a, np.array([dx, dy])) + rng.normal(0, 0.003, a.shape).astype(np.float32)
    got = tremor_shift(a, b, max_px=4.0, min_px=0.5)
    if np.hypot(dx, dy) < 0.5:
        assert np.all(got == 0.0)
    else:
        assert got == pytest.approx([dx, dy], abs=0.15)  # (a bilinear shift blurs)
    full, _ = cv2.phaseCorrelate(a, b, cv2.createHanningWindow((256, 256), cv2.CV_32F))
    assert np.hypot(*full) == pytest.approx(np.hypot(dx, dy), abs=0.15)
