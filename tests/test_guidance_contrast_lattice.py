"""The *lattice* cue (issue 21): thin lines inside the opacified region call the venous
plexus early (a pool at the tip with thin arms), while a smooth collection — a compact
pool, a growing intrathecal column — has none, and without them neither the plexus branch
of the shape cue nor the pieces cue fires on live frames."""

from __future__ import annotations

import dataclasses

import numpy as np
from tests.test_guidance_contrast import _frames

from needleguide.guidance.contrast import ContrastParams, classify_sequence
from needleguide.guidance.contrast_lattice import lattice_length

YY, XX = np.mgrid[:128, :128]


def _lattice() -> np.ndarray:
    """Four 2 mm arms, 44 mm long, crossing at (64, 64) (1 mm pixels)."""
    arms = np.zeros((128, 128), np.float32)
    arms[42:86, 63:65] = 1.0          # along the canal
    arms[63:65, 42:86] = 1.0          # across
    for k in range(-22, 22):          # two diagonals
        arms[64 + k:66 + k, 64 + k] = 1.0
        arms[64 + k:66 + k, 64 - k] = 1.0
    return arms


def test_thin_lines_inside_a_pool_are_measured_and_its_crest_is_not():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 1, (128, 128)).astype(np.float32)
    pool = np.exp(-((YY - 64) ** 2 + (XX - 64) ** 2) / (2 * 8.0 ** 2)).astype(np.float32)
    region = pool > 0.05
    smooth = z + 30.0 * pool           # a dense pool: broad crest, no thin line
    assert lattice_length(smooth, region, 1.0, (64.0, 64.0))[0] < 5.0
    plexus = smooth + 8.0 * _lattice()  # the same pool with thin arms through it
    length, mask = lattice_length(plexus, region | (_lattice() > 0), 1.0, (64.0, 64.0))
    assert length >= 40.0 and mask[45:85, 60:68].any()


def _sequence(blob_at, n=16, fps=7.5, n_mask=3):
    frames = _frames(lambda t: 0.0, n=n, fps=fps, size=128, n_mask=n_mask)
    for i, f in enumerate(frames[n_mask:], start=n_mask):
        t = (i - n_mask) / fps
        frames[i] = dataclasses.replace(f, pixels=f.pixels + blob_at(t).astype(np.float32))
    return frames


def test_a_pool_with_thin_arms_is_a_venous_plexus():
    disc = ((YY - 64) ** 2 + (XX - 64) ** 2 < 8 ** 2).astype(np.float32)
    arms = _lattice()

    def plexus(t):  # a dense pool growing at the tip; thin arms out of it from the start
        return (0.06 + 0.1 * t) * disc + (0.03 * arms if t > 0 else 0.0)

    frames = _sequence(plexus)
    r = classify_sequence(frames, "live", 3)
    assert r.alarm_cause == "lattice" and r.label == "intravascular_venous"
    assert r.alarm_time_s - r.arrival_time_s <= 0.5  # three frames at 7.5 /s
    assert r.alarm_ridge is not None and r.alarm_ridge[45:85, 60:68].any()
    # without the cue nothing calls it: the pool holds most of the iodine (spread ratio
    # ≈ 0.3), the arms lie inside the opacified region (no ridge beyond it)
    off = classify_sequence(frames, "live", 3, ContrastParams(lattice_min_mm=None))
    assert off.alarm_time_s is None


def test_a_growing_column_has_no_lattice_and_no_alarm():
    def column(t):  # a smooth 14 mm wide column lengthening along the sac
        half = 10 + 40 * t
        return (0.04 + 0.05 * t) * (((XX - 64) / 7.0) ** 2 + ((YY - 64) / half) ** 2 < 1)

    r = classify_sequence(_sequence(column), "live", 3, record_all=True)
    assert r.alarm_time_s is None
    assert max(f.lattice_mm for f in r.features) < ContrastParams().lattice_gate_mm
