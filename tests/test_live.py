"""The live session core (issue 19): clock and counters, geometry of image_to_reference,
external probe and needle poses, the virtual operator to "done" in US and FL, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.errors import UserError
from needleguide.live import LiveConfig, LiveSession

BMI = 20.0  # a slim phantom builds fastest


@pytest.fixture(scope="module")
def us_manual() -> LiveSession:
    """A US session without the virtual operator (the needle waits for a pose)."""
    s = LiveSession(LiveConfig(modality="us", bmi=BMI, pixels=256, auto=False))
    yield s
    s.close()


def test_ticks_counters_and_image_to_reference(us_manual):
    s = us_manual
    t0 = 0.0 if s.t_s is None else s.t_s
    frames = [s.tick(t0 + dt) for dt in (0.0, 0.05, 0.2)]
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and np.all(np.diff(seqs) == 1)
    assert [f.t_s for f in frames] == [t0, t0 + 0.05, t0 + 0.2]
    f = frames[-1]
    assert f.frame.truth is None and f.frame.shape == (256, 256)
    rows, cols = f.frame.shape
    for c, r in ((0, 0), (cols - 1, rows - 1)):
        want = f.frame.pixel_to_patient(c, r)
        got = f.image_to_reference @ np.array([c, r, 0.0, 1.0])
        assert np.allclose(got[:3], want, atol=1e-9)
    assert np.allclose(f.image_to_reference[:3, 3], f.frame.ImageToPatient[:3, 3])
    assert set(f.us_meta) == {"ProbeType", "Depths", "SpacingX", "SpacingY", "FrequencyMhz"}
    assert f.us_meta["SpacingX"] == pytest.approx(f.frame.spacing_mm[1])
    assert "ProbeToReference" in f.transforms and "NeedleToReference" not in f.transforms
    with pytest.raises(ValueError, match="backwards"):
        s.tick(t0)


def _column_shift(a: np.ndarray, b: np.ndarray, max_shift: int) -> int:
    """Integer column shift k maximising the correlation of a[:, c] with b[:, c + k],
    over the central, non-black part of the sector."""
    a, b = a.astype(float), b.astype(float)
    rows = slice(a.shape[0] // 5, 4 * a.shape[0] // 5)
    c0, c1 = a.shape[1] // 2 - a.shape[1] // 6, a.shape[1] // 2 + a.shape[1] // 6
    best, arg = -2.0, 0
    for k in range(-max_shift, max_shift + 1):
        x, y = a[rows, c0:c1], b[rows, c0 + k:c1 + k]
        m = (x > 0) & (y > 0)
        cc = np.corrcoef(x[m], y[m])[0, 1]
        if cc > best:
            best, arg = cc, k
    assert best > 0.5, best
    return arg


def test_probe_shift_moves_image(us_manual):
    s = us_manual
    t = (s.t_s or 0.0) + 1.0
    p2r = s.view.probe_to_patient.copy()
    before = s.tick(t)
    lateral = p2r[:3, 0] / np.linalg.norm(p2r[:3, 0])
    moved = p2r.copy()
    moved[:3, 3] += 5.0 * lateral
    s.set_transform("ProbeToReference", moved)
    after = s.tick(t + 0.05)
    assert np.allclose(after.transforms["ProbeToReference"], moved)
    d = after.image_to_reference[:3, 3] - before.image_to_reference[:3, 3]
    assert np.allclose(d, 5.0 * lateral, atol=1e-6)
    # tissue at image x moves to x - 5 mm: the picture slides 5 mm / spacing columns left
    sp = before.frame.spacing_mm[1]
    k = _column_shift(after.frame.pixels, before.frame.pixels, int(8.0 / sp))
    assert abs(k - 5.0 / sp) <= 1.5, (k, 5.0 / sp)
    s.set_transform("ProbeToReference", p2r)
    s.tick(t + 0.1)


def test_needle_pose_places_tip(us_manual):
    s = us_manual
    tip = s.plan.target_mm + np.array([0.5, -1.0, 2.0])
    z = -s.plan.axis  # +z from the tip toward the hub
    x = np.cross([1.0, 0.0, 0.0], z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    pose[:3, 3] = tip
    s.set_transform("NeedleToReference", pose)
    f = s.tick((s.t_s or 0.0) + 0.05)
    got = f.transforms["NeedleTipToReference"]
    assert np.allclose(got[:3, 3], tip, atol=1e-9)
    assert np.allclose(got[:3, 2], z, atol=1e-9)
    assert np.allclose(f.transforms["NeedleToReference"], pose)


def test_bad_transforms(us_manual):
    with pytest.raises(ValueError, match="StylusToReference"):
        us_manual.set_transform("StylusToReference", np.eye(4))
    with pytest.raises(ValueError, match="rotation"):
        us_manual.set_transform("ProbeToReference", np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="4x4"):
        us_manual.set_transform("NeedleToReference", np.eye(3))
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        us_manual.set_transform("NeedleToReference", bad)


def _run_to_done(s: LiveSession, dt: float, max_ticks: int = 3000):
    t, kinds, f = 0.0, [], None
    for _ in range(max_ticks):
        f = s.tick(t)
        kinds += [e.kind for e in f.events]
        if s.done:
            break
        t += dt
    return f, kinds


@pytest.mark.parametrize("modality", ["us", "fluoro"])
def test_auto_reaches_done_at_target(modality):
    s = LiveSession(LiveConfig(modality=modality, bmi=BMI, pixels=256, advance_mm_s=25.0))
    try:
        f, kinds = _run_to_done(s, 0.1)
    finally:
        s.close()
    assert s.done, kinds
    assert kinds[0] == "pass" and "contrast" in kinds and kinds[-1] == "done"
    assert kinds.index("pass") < kinds.index("contrast") < kinds.index("done")
    tip = f.transforms["NeedleTipToReference"][:3, 3]
    assert np.linalg.norm(tip - s.target_mm) < 3.0
    if modality == "fluoro":
        assert "CArmToReference" in f.transforms and f.us_meta == {}
        assert f.frame.modality == "fluoro" and f.frame.shape == (256, 256)
    # after "done" the scene stands: later ticks keep rendering it
    g = s.tick(f.t_s + 0.5)
    assert g.seq == f.seq + 1 and np.allclose(g.transforms["NeedleTipToReference"][:3, 3], tip)


@pytest.mark.parametrize("kw, field", [
    ({"modality": "xray"}, "modality"), ({"pixels": 50}, "pixels"), ({"bmi": 5}, "bmi"),
    ({"procedure": "no-such-procedure"}, "procedure"), ({"advance_mm_s": -1.0}, "advance_mm_s"),
    ({"seed": -3}, "seed"), ({"auto": "yes"}, "auto"), ({"side": "up"}, "side"),
])
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(UserError, match=field):
        LiveConfig(**kw)


def test_external_needle_in_artery_raises_the_alarm():
    """FL, the needle placed from outside on a segmental artery, a test dose on request:
    the contrast classifier (on a worker thread, frames keep coming) fires the alarm."""
    from needleguide.live.poses import pose_from_z
    from needleguide.scene.injectate.placement import tip_for_pattern

    s = LiveSession(LiveConfig(modality="fluoro", bmi=BMI, pixels=256, level="L4-L5",
                               side="right"))
    try:
        tip = tip_for_pattern(s.patient, "intravascular", "L4-L5", "right")
        s.set_transform("NeedleToReference", pose_from_z(tip, -s.plan.axis))
        s.inject()
        f, kinds = _run_to_done(s, 1.0 / 15.0)
    finally:
        s.close()
    assert np.allclose(f.transforms["NeedleTipToReference"][:3, 3], tip)
    assert kinds.index("contrast") < kinds.index("alarm") < kinds.index("done"), kinds
