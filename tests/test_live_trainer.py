"""The browser trainer's core (issue 20): an ultrasound sacroiliac session driven by
commands from the first tick to finish() — state keys, probe and scanner commands, the
needle steered to the target (the test steers with the TRUTH; the trainee cannot), a
test injection, and the result scored like ``simulate``."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.errors import UserError
from needleguide.frame import Dose
from needleguide.live.trainer import TrainerConfig, TrainerFrame, TrainerSession
from needleguide.session.imaging import us_target_px
from needleguide.session.scoring import score_session

STATE_KEYS = {"modality", "procedure", "procedure_name", "level", "side", "target",
              "clock_s", "finished", "phase", "us", "fluoro", "needle", "overlays", "alarm",
              "events"}
US_KEYS = {"probe", "depth_mm", "gain_db", "frequency_mhz", "depth_range_mm",
           "frequency_range_mhz", "pose"}
POSE_KEYS = {"slide_mm", "elev_mm", "tilt_deg", "rotate_deg"}
NEEDLE_KEYS = {"in_body", "inserted_mm", "passes", "gauge", "length_mm", "entry_set"}
OVERLAY_KEYS = {"tip", "shaft", "levels", "alarm"}
DT = 1.0 / 30.0


class Clock:
    def __init__(self, s: TrainerSession):
        self.s, self.t = s, 0.0

    def tick(self, dt: float = DT) -> TrainerFrame | None:
        self.t += dt
        return self.s.tick(self.t)


@pytest.fixture(scope="module")
def us() -> TrainerSession:
    s = TrainerSession(TrainerConfig(procedure="sacroiliac", modality="us", pixels=256))
    yield s
    s.close()


def turn_to_target(s: TrainerSession) -> tuple[float, float, float]:
    """From the TRUE needle (tests only; a trainee looks at the image): how far the target
    lies ahead along the shaft (mm) and the in-plane / out-of-plane turns (deg) that
    point the shaft at it."""
    b = s.needle.body
    to = s.target_mm - b.tip
    want = to / np.linalg.norm(to)
    lat = s._lateral()
    u = lat - b.axis * float(lat @ b.axis)
    u /= np.linalg.norm(u)
    w = np.cross(b.axis, u)
    inplane, outplane = (float(np.degrees(np.arctan2(want @ x, want @ b.axis)))
                         for x in (u, w))
    return float(to @ b.axis), inplane, outplane


def steer_to_target(s: TrainerSession, clock: Clock, step_mm: float = 5.0) -> None:
    """Advance in steps, steering toward the target from the TRUE tip (test only)."""
    for _ in range(40):
        ahead, *ang = turn_to_target(s)
        if ahead < 0.5:
            return
        s.command({"op": "steer", "inplane_deg": float(np.clip(ang[0], -5, 5)),
                   "outplane_deg": float(np.clip(ang[1], -5, 5))})
        s.command({"op": "advance", "mm": float(np.clip(ahead, 0.1, step_mm))})
        f = clock.tick()
        assert f is not None  # ultrasound: a frame every tick
        if any(e["kind"] == "bone_contact" for e in f.events):
            s.command({"op": "withdraw", "mm": 3.0})
            clock.tick()


def test_ultrasound_session_from_first_tick_to_result(us, tmp_path):
    s = us
    clock = Clock(s)
    st = s.state()
    assert set(st) == STATE_KEYS and set(st["us"]) == US_KEYS
    assert set(st["us"]["pose"]) == POSE_KEYS and set(st["needle"]) == NEEDLE_KEYS
    assert set(st["overlays"]) == OVERLAY_KEYS and st["fluoro"] is None
    assert st["phase"] == "ready" and not st["finished"] and st["target"] == s.target_name

    f0 = s.tick(0.0)
    assert f0.seq == 0 and f0.rgb.shape == (256, 256, 3) and f0.rgb.dtype == np.uint8
    assert f0.frame.truth is None and f0.frame.shape == (256, 256)
    with pytest.raises(UserError, match="^t_s"):
        s.tick(-1.0)

    # the probe: a slide moves the image; reset returns to the planned pose exactly
    planned = s.probe.planned.copy()
    s.command({"op": "probe", "slide_mm": 10.0, "id": 1})
    f1 = clock.tick()
    assert f1.ack == 1 and s.state()["us"]["pose"]["slide_mm"] == 10.0
    shift = f1.frame.ImageToPatient[:3, 3] - f0.frame.ImageToPatient[:3, 3]
    assert abs(float(shift @ planned[:3, 0]) - 10.0) < 1.0
    assert np.abs(f1.frame.pixels.astype(float) - f0.frame.pixels).mean() > 5.0
    s.command({"op": "probe_reset", "id": 2})
    f2 = clock.tick()
    assert np.allclose(f2.frame.ImageToPatient, f0.frame.ImageToPatient)

    # the scanner: depth changes the image's metadata and spacing
    depth0 = st["us"]["depth_mm"]
    s.command({"op": "us", "depth_mm": 90.0, "gain_db": 6.0, "id": 3})
    f3 = clock.tick()
    assert f3.frame.settings["depth_mm"] == 90.0 and f3.frame.settings["gain_db"] == 6.0
    assert f3.frame.spacing_mm[0] > f2.frame.spacing_mm[0]
    assert s.state()["us"]["depth_mm"] == 90.0 and s.view.meta["Depths"] == 90.0
    s.command({"op": "us", "depth_mm": depth0, "gain_db": 0.0})
    f = clock.tick()
    assert np.allclose(f.frame.spacing_mm, f0.frame.spacing_mm)

    # the needle: entry at the planned entry's pixel (clipped into the image), insert
    px = us_target_px(f.frame, s.plan.entry_mm)
    s.command({"op": "entry", "px": [float(np.clip(px[0], 0, 255)),
                                     float(np.clip(px[1], 0, 255))], "id": 4})
    s.command({"op": "insert", "id": 5})
    f = clock.tick()
    assert f.ack == 5 and [e["kind"] for e in f.events] == ["info", "pass"]
    assert np.linalg.norm(s.needle.entry - s.plan.entry_mm) < 10.0
    st = s.state()
    assert st["phase"] == "in_body" and st["needle"]["passes"] == 1
    with pytest.raises(UserError, match="^entry"):
        s.command({"op": "entry", "px": [10, 10]})
    steer_to_target(s, clock)
    err = float(np.linalg.norm(s.needle.body.tip - s.target_mm))
    assert err < s.proc.tolerance_mm

    # a test injection of local anaesthetic, read from the frames
    s.command({"op": "inject"})
    clock.tick()
    assert s.state()["phase"] == "injecting"
    with pytest.raises(UserError, match="^advance"):
        s.command({"op": "advance", "mm": 2})
    told = []
    for _ in range(200):
        told += clock.tick(0.1).events
        if s.state()["phase"] != "injecting":
            break
    assert s.state()["phase"] == "in_body"
    assert any(e["kind"] == "info" and "spread" in e["text"] for e in told)

    # finish: scored by session/scoring.py on the final true tip
    s.command({"op": "finish", "id": 9})
    fin = clock.tick()
    assert fin.ack == 9 and fin.events[-1]["kind"] == "done"
    assert s.finished and s.state()["phase"] == "done" and s.state()["finished"]
    assert clock.tick() is None
    r = s.finish()
    assert s.finish() is r
    tip_err = float(np.linalg.norm(s.needle.body.tip - s.target_mm))
    want = score_session(final_mm=tip_err, tolerance_mm=s.proc.tolerance_mm, events=r.events,
                         passes=1, time_s=fin.t_s, dose=Dose(), contrast_ml=0.0,
                         steps=r.steps, injectate_ml=s.proc.injectate_ml.min_ml,
                         shots=r.metrics["shots"], analyser=s.analyser.counts)
    assert r.metrics == want
    assert r.metrics["final_tip_error_mm"] == round(tip_err, 2)
    assert r.metrics["procedure_time_s"] == round(fin.t_s, 1)
    assert r.metrics["success"] and r.metrics["passes"] == 1
    assert r.metrics["shots"] >= fin.seq  # every displayed US frame was acquired
    j = r.interface_json()
    assert (j["procedure"], j["modality"], j["dap_gy_cm2"]) == ("sacroiliac", "us", 0.0)
    assert "test_1" in r.extra["confirm"] and r.extra["confirm"]["test_1"]["mode"] == "us"
    titles = [t for t, _ in r.key_frames]
    assert titles[0].startswith("pass 1") and any("test injection" in t for t in titles)
    with pytest.raises(UserError, match="^op: the session has finished"):
        s.command({"op": "overlays", "tip": False})

    from needleguide.report import write_report

    html = write_report([r], tmp_path, "trainer").read_text()
    assert "Sacroiliac" in html and "SUCCESS" in html
