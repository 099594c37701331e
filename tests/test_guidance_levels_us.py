"""US paramedian sagittal sweep level labelling (guidance/levels_us*)."""

import numpy as np
import pytest

from needleguide.frame import Frame
from needleguide.guidance.levels_us import draw_sweep, label_sweep
from needleguide.guidance.levels_us_count import find_gaps, level_name
from needleguide.session.level_sweep import make_sweep


@pytest.fixture(scope="module")
def sweep():
    from needleguide.anatomy.phantom import build_phantom

    p = build_phantom("lumbar", bmi=24.0, degeneration=0, seed=0, spacing_mm=1.5)
    # from 45 mm below L5-S1 up to about L3-L4
    return make_sweep(p, seed=0, side="right", step_mm=9.0, length_mm=140.0)


def test_sweep_truth_runs_caudal_to_cranial(sweep):
    u = sweep.u_true
    assert len(sweep.frames) >= 12
    assert u[0] < -1.0 and u[-1] > 1.5  # starts on the sacrum, ends above L4-L5
    assert np.all(np.diff(u) > 0)


def test_sacrum_found_and_l5s1_labelled(sweep):
    frames = [f.without_truth() for f in sweep.frames]
    res = label_sweep(frames)
    assert res.anchor_confidence is not None and res.anchor_confidence > 0.3
    names = [lab.name for lab in res.labels]
    truth = [level_name(u) for u in sweep.u_true]
    at_l5s1 = int(np.argmin(np.abs(sweep.u_true)))
    assert names[at_l5s1] == "L5-S1"
    assert names[0] == "sacrum"
    right = np.mean([a == b for a, b in zip(names, truth, strict=True)])
    assert right >= 0.75, (names, truth)
    assert all(0.0 <= lab.confidence <= 1.0 for lab in res.labels)
    img = draw_sweep(res)
    assert img.ndim == 3 and img.shape[0] > res.panorama.shape[0]
    assert img.shape[1] == res.panorama.shape[1]


def test_analyser_does_not_use_truth_or_pose(sweep):
    """Same labels with the truth removed and the poses replaced by the identity."""
    import dataclasses

    a = label_sweep(sweep.frames, with_panorama=False)
    blind = [dataclasses.replace(f.without_truth(), ImageToPatient=np.eye(4),
                                 settings={k: v for k, v in f.settings.items()
                                           if k not in ("ProbeToPatient", "ImageToProbe")})
             for f in sweep.frames]
    b = label_sweep(blind, with_panorama=False)
    assert [x.name for x in a.labels] == [x.name for x in b.labels]


def _frame(px):
    return Frame(pixels=px, spacing_mm=(0.3, 0.3), ImageToPatient=np.eye(4), time_s=0.0,
                 modality="us")


def test_bad_input():
    img = np.zeros((64, 64), np.uint8)
    with pytest.raises(ValueError, match="at least 2"):
        label_sweep([_frame(img)])
    with pytest.raises(ValueError, match="same size"):
        label_sweep([_frame(img), _frame(np.zeros((32, 64), np.uint8))])
    with pytest.raises(ValueError, match="no scan area"):
        label_sweep([_frame(img), _frame(img)])


def test_gaps_on_a_synthetic_sawtooth():
    x = np.arange(0.0, 200.0, 0.5)
    depth = np.full(x.shape, 40.0)
    for g in (50.0, 85.0, 120.0):  # 8 mm wide windows showing echoes 20 mm deeper
        depth[(x > g - 4) & (x < g + 4)] = 60.0
    gaps = find_gaps(x, depth)
    assert [round(gx) for gx, _ in gaps] == [50, 85, 120]
    assert all(d > 15 for _, d in gaps)
    covered = x < 100.0  # outside the scan area: no gap
    assert [round(gx) for gx, _ in find_gaps(x, depth, covered)] == [50, 85]


def test_level_names():
    assert level_name(0.2) == "L5-S1"
    assert level_name(-0.7) == "sacrum"
    assert level_name(1.4) == "L4-L5"
    assert level_name(5.2) == "T12-L1"
