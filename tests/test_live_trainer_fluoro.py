"""The browser trainer's core under fluoroscopy: the pedal (pulsed frames and dose while
down, last-image hold without dose when up), spot images, C-arm angles and named views,
the level overlay, and a contrast test dose into a vessel (forced with the TRUTH, test
only) that raises the alarm and leaves the decision to the trainee."""

from __future__ import annotations

import time

import numpy as np
import pytest

from needleguide.errors import UserError
from needleguide.fluoro.carm import CArm
from needleguide.fluoro.dose_events import sum_doses
from needleguide.live.trainer import TrainerConfig, TrainerSession

DT = 1.0 / 30.0


@pytest.fixture(scope="module")
def fl() -> TrainerSession:
    s = TrainerSession(TrainerConfig(procedure="lumbar-transforaminal", modality="fluoro",
                                     bmi=20.0, pixels=256))
    yield s
    s.close()


def dap(s: TrainerSession) -> float:
    return s.carm.fl.dose_total.dap_gy_cm2


def test_fluoroscopy_session(fl):
    s = fl
    t = 0.0
    st = s.state()
    assert st["us"] is None and set(st["fluoro"]) == {
        "orbit_deg", "tilt_deg", "view", "views", "pedal", "pulse_rate_hz", "fluoro_time_s",
        "dap_gy_cm2", "k_ref_mgy", "spots", "dsa_runs"}
    assert st["fluoro"]["view"] == st["fluoro"]["views"][0] == "oblique-right"
    first = s.tick(t)  # the screen, before any exposure: black, no dose
    assert first is not None and first.frame.dose.dap_gy_cm2 == 0.0
    assert s.tick(t + DT) is None and dap(s) == 0.0
    t += DT

    # pedal down: pulses at the pulse rate, dose accrues
    s.command({"op": "pedal", "down": True, "id": 1})
    shown, doses = [], []
    for _ in range(30):
        t += DT
        f = s.tick(t)
        if f is not None:
            shown.append(f)
            doses.append(dap(s))
    assert 14 <= len(shown) <= 16 and shown[0].ack == 1
    assert all(b > a for a, b in zip(doses, doses[1:], strict=False))
    assert all(f.frame.dose.dap_gy_cm2 > 0 for f in shown)
    st = s.state()["fluoro"]
    assert st["pedal"] and st["fluoro_time_s"] == pytest.approx(len(shown) / 15.0, abs=0.1)

    # pedal up: one repaint of the held image without dose, then nothing
    s.command({"op": "pedal", "down": False, "id": 2})
    before = dap(s)
    t += DT
    held = s.tick(t)
    assert held.ack == 2 and held.frame.settings["last_image_hold"]
    assert held.frame.dose.dap_gy_cm2 == 0.0
    assert np.array_equal(held.frame.pixels, shown[-1].frame.pixels)
    for _ in range(10):
        t += DT
        assert s.tick(t) is None
    assert dap(s) == before

    # a spot image: one frame, dose
    s.command({"op": "spot"})
    t += DT
    spot = s.tick(t)
    assert spot.frame.settings["mode"] == "spot" and dap(s) > before
    assert s.state()["fluoro"]["spots"] == 1
    t += DT
    assert s.tick(t) is None

    # the C-arm: absolute angles (rounded to whole degrees), the detector moves
    det0 = s.carm.carm.DetectorToPatient.copy()
    s.command({"op": "carm", "orbit_deg": 20.4, "tilt_deg": -5})
    s.command({"op": "spot"})
    t += DT
    f = s.tick(t)
    st = s.state()["fluoro"]
    assert (st["orbit_deg"], st["tilt_deg"], st["view"]) == (20.0, -5.0, "custom")
    want = CArm(geometry=s.carm.carm.geometry, isocenter_mm=s.carm.carm.isocenter_mm,
                orbit_deg=20.0, tilt_deg=-5.0)
    assert np.allclose(f.frame.ImageToPatient, want.ImageToPatient)
    assert not np.allclose(s.carm.carm.DetectorToPatient, det0)
    s.command({"op": "view", "name": "ap"})
    t += DT
    held = s.tick(t)  # the C-arm moved: a repaint (the last image stays on the monitor)
    assert held is not None and held.frame.dose.dap_gy_cm2 == 0.0
    ap = s.carm.named["ap"]
    assert s.state()["fluoro"]["view"] == "ap"
    assert s.state()["fluoro"]["orbit_deg"] == pytest.approx(ap.orbit_deg, abs=0.05)

    # the level overlay: drawn on the image shown
    s.command({"op": "spot"})
    t += DT
    plain = s.tick(t)
    s.command({"op": "overlays", "levels": True, "id": 7})
    t += DT
    labelled = s.tick(t)
    assert labelled.ack == 7 and not np.array_equal(labelled.rgb, plain.rgb)
    assert s.state()["overlays"]["levels"]

    # the needle: entry on the planned entry's pixel, then a test dose in a vessel
    carm = s.carm.carm
    px = carm.project(s.plan.entry_mm[None])[0]
    s.command({"op": "entry", "px": [float(px[0]), float(px[1])]})
    s.command({"op": "insert"})
    s.command({"op": "advance", "mm": 10.0})
    t += DT
    s.tick(t)
    assert np.linalg.norm(s.needle.entry - s.plan.entry_mm) < 5.0
    with pytest.raises(UserError, match="^entry: the needle is in the body"):
        s.command({"op": "entry", "px": [10, 10]})
    _force_into_vessel(s)
    s.command({"op": "inject", "dsa": False})
    dap_before, told = dap(s), []
    for _ in range(400):
        t += 1.0 / 15.0
        f = s.tick(t)
        told += f.events if f is not None else []
        if s.state()["phase"] == "reading":
            time.sleep(0.02)  # the classifier runs on the worker thread
        elif s.state()["phase"] == "in_body":
            break
    assert dap(s) > dap_before  # the dose was imaged live, pedal or not
    kinds = [e["kind"] for e in told]
    assert "contrast" in kinds and "alarm" in kinds
    st = s.state()
    assert st["alarm"] and st["needle"]["in_body"]  # nothing withdrawn for the trainee
    t += DT
    s.command({"op": "spot"})
    f = s.tick(t)
    assert (f.rgb[2, :, 0] > 150).mean() > 0.9  # the red banner across the top

    r = s.finish()
    assert s.finished
    ev = {e.kind: e for e in r.events}
    assert ev["intravascular_injection"].detected and "injection_aborted" in ev
    m = r.metrics
    assert not m["success"] and m["contrast_ml"] == 1.0 and m["passes"] == 1
    total = sum_doses(r.dose_events)
    assert m["dap_gy_cm2"] == round(total.dap_gy_cm2, 5) == round(dap(s), 5)
    assert m["fluoro_time_s"] == round(total.fluoro_time_s, 2)
    assert r.config.modality == "fluoro" and r.extra["confirm"]["test_1"]["mode"] == "live"


def _force_into_vessel(s: TrainerSession) -> None:
    """Move the TRUE tip into a segmental artery (as the engine's ``force_tip``)."""
    from needleguide.scene.injectate.placement import tip_for_pattern

    b = s.needle.body
    vt = tip_for_pattern(s.patient, "intravascular", s.level or "L4-L5", s.side)
    b.entry = vt + (b.entry - b.tip)
    b.tip = vt
    b.inserted = float(np.linalg.norm(vt - b.entry))
    b.axis = (vt - b.entry) / b.inserted


def test_dsa_test_dose_into_a_vessel_alarms():
    """A test dose given as a DSA run: the run's frames (mask, then subtracted) come
    without the pedal, the DSA counter goes up, the classifier's DSA mode alarms."""
    s = TrainerSession(TrainerConfig(procedure="lumbar-transforaminal", modality="fluoro",
                                     bmi=24.0, seed=3, pixels=256))
    try:
        t = 0.0
        s.tick(t)
        px = s.carm.carm.project(s.plan.entry_mm[None])[0]
        for c in ({"op": "entry", "px": [float(px[0]), float(px[1])]}, {"op": "insert"},
                  {"op": "advance", "mm": 10.0}):
            s.command(c)
            t += DT
            s.tick(t)
        _force_into_vessel(s)
        s.command({"op": "inject", "dsa": True})
        frames, told = 0, []
        for _ in range(600):
            t += 1.0 / 30.0
            f = s.tick(t)
            if f is not None:
                frames += 1
                told += f.events
            if s.state()["phase"] == "reading":
                time.sleep(0.02)
            elif s.state()["phase"] == "in_body" and t > 2.0:
                break
        st = s.state()
        assert st["fluoro"]["dsa_runs"] == 1 and not st["fluoro"]["pedal"]
        assert frames >= 8  # ~6 frames/s over the dose, no pedal
        assert "alarm" in [e["kind"] for e in told] and st["alarm"]
        r = s.finish()
        assert r.extra["confirm"]["test_1"]["mode"] == "dsa"
        assert not r.metrics["success"]
    finally:
        s.close()
