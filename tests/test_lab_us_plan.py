"""The lab's in-plane needle set-ups steer the beams as a sonographer does: toward
perpendicular to the shaft (a brighter needle echo), never away from it."""

from __future__ import annotations

import numpy as np

from needleguide import geometry
from needleguide.anatomy.phantom import build_phantom
from needleguide.lab.needle_cases import _plan_us


def test_steering_turns_the_beams_toward_perpendicular_to_the_needle():
    p = build_phantom("cervical", bmi=26, degeneration=1, seed=3, spacing_mm=1.5)
    steered = 0
    for k in range(80):
        plan = _plan_us(p, "cervical", np.random.default_rng(500 + k), 500 + k)
        if plan is None or plan[3]["steer_deg"] == 0.0:
            continue
        img, scene, nd, par = plan
        P2P = np.asarray(scene.poses["ProbeToPatient"], float)
        u = geometry.apply_vector(geometry.invert(P2P), nd.axis)[:2]  # in the image plane
        u /= np.linalg.norm(u)
        st = np.radians(par["steer_deg"])
        to_beam = np.degrees(np.arccos(abs(u @ np.array([np.sin(st), np.cos(st)]))))
        unsteered = np.degrees(np.arccos(abs(u[1])))
        assert to_beam > unsteered, (par["steer_deg"], to_beam, unsteered)
        assert to_beam <= 90.0 + 1e-9
        steered += 1
        if steered == 4:
            break
    assert steered == 4  # (half the linear set-ups are steered)
