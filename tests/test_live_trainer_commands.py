"""The trainer's command validation (a UserError naming the field, at once), its config,
and the scoring shared with ``simulate`` (session/scoring.py): run_session's metrics are
the scoring function's values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from needleguide.errors import UserError
from needleguide.live.trainer import TrainerConfig
from needleguide.live.trainer_commands import Context, predict, validate
from needleguide.session.models import Event
from needleguide.session.scoring import score_session, succeeded

US = dict(modality="us", us_ranges={"depth_mm": (20.0, 200.0), "gain_db": (-20.0, 30.0),
                                    "frequency_mhz": (2.0, 5.0)})
FL = dict(modality="fluoro", views=("oblique-right", "ap", "lateral"))


def bad(cmd: dict, field: str, ctx: Context | None = None, match: str = "") -> str:
    with pytest.raises(UserError) as e:
        validate(cmd, ctx or Context(**FL))
    msg = str(e.value)
    assert msg.startswith(f"{field}: "), msg
    assert match in msg, msg
    return msg


def test_angles_out_of_range_name_the_field_and_the_range():
    assert bad({"op": "carm", "tilt_deg": 70}, "tilt_deg") == \
        "tilt_deg: 70 is outside [-45, 45] deg"
    bad({"op": "carm", "orbit_deg": -91.5}, "orbit_deg", match="[-90, 90] deg")
    bad({"op": "probe", "tilt_deg": 16}, "tilt_deg", Context(**US), "[-15, 15] deg")
    bad({"op": "probe", "rotate_deg": -46}, "rotate_deg", Context(**US), "[-45, 45]")
    bad({"op": "steer", "inplane_deg": 5.5}, "inplane_deg",
        Context(**FL, in_body=True), "[-5, 5]")
    bad({"op": "us", "depth_mm": 250}, "depth_mm", Context(**US), "[20, 200] mm")
    bad({"op": "us", "frequency_mhz": 9}, "frequency_mhz", Context(**US), "[2, 5] MHz")


@pytest.mark.parametrize("value", [math.nan, math.inf, True, "5", None])
def test_nan_infinite_and_non_numbers_are_refused(value):
    bad({"op": "advance", "mm": value}, "mm", Context(**FL, in_body=True))


def test_unknown_op_field_view_and_wrong_modality():
    bad({"op": "fly"}, "op", match="choose one of")
    bad({"mm": 3}, "op")
    bad(["advance"], "op")
    bad({"op": "view", "name": "axial"}, "name", match="oblique-right, ap, lateral")
    bad({"op": "carm", "roll_deg": 3}, "roll_deg", match="orbit_deg, tilt_deg")
    bad({"op": "probe", "slide_mm": 3}, "op", match="ultrasound command")
    bad({"op": "pedal", "down": True}, "op", Context(**US), "fluoroscopy command")
    bad({"op": "pedal"}, "down")
    bad({"op": "pedal", "down": 1}, "down", match="true or false")
    bad({"op": "spot", "id": "7"}, "id")
    bad({"op": "inject", "dsa": True}, "dsa", Context(**US, in_body=True))


def test_needle_state_rules():
    bad({"op": "entry", "px": [10, 10]}, "entry", Context(**FL, in_body=True),
        "withdraw it")
    bad({"op": "entry", "px": [10, 600]}, "px", Context(**FL), "row")
    bad({"op": "entry", "px": [10]}, "px")
    bad({"op": "insert"}, "entry", Context(**FL), "pick the skin entry")
    bad({"op": "insert"}, "insert", Context(**FL, in_body=True, entry_set=True))
    bad({"op": "advance", "mm": 3}, "advance", match="not in the body")
    bad({"op": "withdraw", "mm": 300}, "mm", Context(**FL, in_body=True), "[0.1, 250]")
    bad({"op": "inject"}, "inject", Context(**FL, in_body=True, reading=True))
    bad({"op": "carm", "orbit_deg": 5}, "carm", Context(**FL, injecting=True),
        "test dose")
    bad({"op": "overlays", "tip": True}, "op", Context(**FL, finished=True), "finished")


def test_queued_commands_are_judged_as_the_session_will_stand():
    ctx = Context(**FL)
    for cmd in ({"op": "entry", "px": [100, 100]}, {"op": "insert"},
                {"op": "advance", "mm": 5}):
        predict(ctx, validate(cmd, ctx))
    bad({"op": "entry", "px": [100, 100]}, "entry", ctx)  # the insert is queued
    predict(ctx, validate({"op": "withdraw", "mm": 250}, ctx))
    assert not ctx.in_body
    validate({"op": "entry", "px": [100, 100]}, ctx)
    # the probe's accumulated pose: ±100 mm, tilt ±45 deg from the planned pose
    us = Context(**US)
    for _ in range(3):
        predict(us, validate({"op": "probe", "tilt_deg": 15}, us))
    bad({"op": "probe", "tilt_deg": 1}, "tilt_deg", us, "[-45, 45] deg")
    for _ in range(5):
        predict(us, validate({"op": "probe", "slide_mm": 20}, us))
    bad({"op": "probe", "slide_mm": 1}, "slide_mm", us, "[-100, 100] mm")
    predict(us, validate({"op": "probe", "rotate_deg": 45}, us))
    predict(us, validate({"op": "probe", "rotate_deg": 45}, us))
    # rotated 90 deg: a slide along the array is now an elevational move of the plan
    predict(us, validate({"op": "probe", "slide_mm": 20}, us))
    assert us.pose[0] == pytest.approx(100.0) and us.pose[1] == pytest.approx(-20.0)
    c = validate({"op": "advance", "mm": 5, "id": 12}, Context(**FL, in_body=True))
    assert (c.id, c.op, c.args) == (12, "advance", {"mm": 5.0})


@pytest.mark.parametrize("kw, field", [
    ({"bmi": 70}, "bmi"), ({"pixels": 100}, "pixels"), ({"pixels": 256.0}, "pixels"),
    ({"modality": "mri"}, "modality"), ({"seed": -1}, "seed"),
    ({"procedure": "knee-replacement"}, "procedure"), ({"side": 3}, "side"),
])
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(UserError, match=rf"^{field}"):
        TrainerConfig(**kw)


def test_success_rule():
    ok = [Event(1.0, "bone_contact", True)]
    assert succeeded(2.9, 3.0, ok) and not succeeded(3.1, 3.0, ok)
    assert not succeeded(1.0, 3.0, ok + [Event(2.0, "intravascular_injection", False)])
    assert succeeded(1.0, 3.0, ok + [Event(2.0, "intravascular_injection", True)])
    assert not succeeded(1.0, 3.0, ok + [Event(2.0, "injection_aborted", True)])


SIMULATE_KEYS = {"procedure", "modality", "seed", "final_tip_error_mm", "tolerance_mm",
                 "success", "passes", "procedure_time_s", "fluoro_time_s", "dap_gy_cm2",
                 "reference_air_kerma_mgy", "contrast_ml", "analyser", "detection_rate",
                 "events"}


def test_run_session_metrics_are_the_scoring_functions():
    """``simulate --json`` comes from session/scoring.py (bit-identical to before the
    move: checked by hand on four cases); the engine's metrics are its values."""
    from needleguide.frame import Dose
    from needleguide.procedures import get_procedure
    from needleguide.session import SessionConfig, run_session

    r = run_session(SessionConfig.build(procedure="sacroiliac", modality="us", seed=3,
                                        record_video=False))
    m = r.metrics
    proc = get_procedure("sacroiliac")
    want = score_session(final_mm=m["final_tip_error_mm"], tolerance_mm=proc.tolerance_mm,
                         events=[e for e in r.events if e.kind != "wrong_level"],
                         passes=m["passes"], time_s=m["procedure_time_s"], dose=Dose(),
                         contrast_ml=0.0, steps=r.steps,
                         injectate_ml=proc.injectate_ml.min_ml, shots=m["shots"],
                         analyser={v: {"frames": c["frames"], "found": c["found"]}
                                   for v, c in m["analyser"].items()})
    assert m == want
    assert list(m) == list(want)  # the key order of session.json too
    assert set(r.interface_json()) == SIMULATE_KEYS
    assert m["steps"] == len(r.steps) > 0
    assert m["detection_rate"] == round(float(np.mean([s.detected for s in r.steps])), 3)
