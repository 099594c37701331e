"""Level labels on FL frames: synthetic column (known answer) and a simulated AP/lateral
pair scored against the projected vertebrae."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.frame import Frame
from needleguide.guidance.levels import ORDER, baseline_levels, label_levels


def _column(n_bodies=5, pitch_px=46, size=256, seed=0):
    """White-bone lateral-like image: bodies with bright end-plates, dark discs, a smooth
    sacrum below the lowest disc, and the iliac wings overlapping from L5 down."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 0.3, np.float32)
    c0, c1 = size // 2 - 25, size // 2 + 25
    bottom = size - 30  # L5-S1 disc
    img[bottom + 4:, c0 - 20:c1 + 20] = 0.6  # sacrum, no disc
    for k in range(n_bodies + 1):
        d = bottom - k * pitch_px
        top = d - pitch_px + 5
        img[max(top, 0):max(d - 4, 0), c0:c1] = 0.6
        for e in (d - 5, d + 4):
            if 0 <= e < size:
                img[e, c0:c1] = 0.95
    img[bottom - pitch_px + 8:, :] += 0.2  # iliac wings over L5 and the sacrum
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    return Frame(pixels=img, spacing_mm=(1.0, 1.0), ImageToPatient=np.eye(4), time_s=0.0,
                 modality="fluoro", settings={"pixel_mm": 1.0, "sod_mm": 650.0,
                                              "sid_mm": 1000.0, "view": "lateral"}), bottom


def test_synthetic_column_counts_from_the_sacrum():
    f, bottom = _column()
    labels = label_levels(f)
    names = [lab.name for lab in labels]
    assert names[:3] == list(ORDER[:3])
    l5 = labels[1]
    assert abs(l5.row_px - (bottom - 23)) < 8
    assert all(0 < lab.confidence <= 1 for lab in labels)


def test_baseline_counts_peaks_bottom_up():
    f, _ = _column()
    b = baseline_levels(f)
    assert b and b[0].name == "S1"
    assert [lab.row_px for lab in b] == sorted((lab.row_px for lab in b), reverse=True)


@pytest.fixture(scope="session")
def ap_lateral():
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.lab.eval_levels import make_fl_frame

    p = build_phantom("lumbar", bmi=24.0, degeneration=0, seed=11, spacing_mm=2.0)
    return {v: make_fl_frame(p, v, "L4", seed=11, pixels=256) for v in ("ap", "lateral")}


def test_simulated_frames_are_scored(ap_lateral):
    from needleguide.guidance.levels import iso_pixel_mm
    from needleguide.lab.eval_levels import score_frame

    for frame, truth in ap_lateral.values():
        f = frame.without_truth()
        labels = label_levels(f)
        assert len(labels) >= 3
        right, total = score_frame(labels, truth, f.shape, 35.0 / iso_pixel_mm(f))
        assert total >= 4 and 0 <= right <= total
        # labels go upward in anatomical order
        rows = [lab.row_px for lab in labels]
        assert rows == sorted(rows, reverse=True)


def test_ap_frame_is_labelled_from_the_sacrum(ap_lateral):
    from needleguide.guidance.levels import iso_pixel_mm
    from needleguide.lab.eval_levels import score_frame

    frame, truth = ap_lateral["ap"]
    f = frame.without_truth()
    right, total = score_frame(label_levels(f), truth, f.shape, 35.0 / iso_pixel_mm(f))
    assert right == total


def test_ap_anchor_is_the_two_sided_sacral_step_not_a_one_sided_blob():
    """Synthetic AP: the wide sacral mass begins below the lowest disc on both sides; a
    one-sided blob (bowel gas in bone-bright terms) ends higher up and must not win."""
    from needleguide.guidance.levels import (
        LevelParams,
        column_profile,
        disc_energy,
        sacral_anchor_ap,
    )

    f, bottom = _column()
    g = np.asarray(f.pixels, np.float32).copy()
    g[bottom - 46 + 8:, :] -= 0.2  # no lateral-view wing overlap
    g[bottom + 4:, 30:226] += 0.25  # sacral ala + iliac wings, both sides
    g[bottom - 120:bottom - 80, 30:80] -= 0.3  # one-sided dark blob ending higher up
    pix = 1.0 * 650.0 / 1000.0
    col = np.full(g.shape[0], g.shape[1] / 2.0)
    e = disc_energy(column_profile(g, col, int(12 / pix)), pix)
    anchor, support = sacral_anchor_ap(g, col, e, pix, LevelParams())
    assert abs(anchor - bottom) < 15 and 0.0 <= support <= 1.0
