"""Needle visibility against insertion angle (issue 16 part 3; benchmarks/us_needle_angle.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from needleguide.scene import Needle

_spec = importlib.util.spec_from_file_location(
    "us_needle_angle", Path(__file__).resolve().parents[1] / "benchmarks" / "us_needle_angle.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)

ANGLES = [15, 30, 45, 60, 70]  # insertion angle to the probe face


@pytest.fixture(scope="module")
def patient():
    return B._patient()


def _curve(patient, echogenic):
    return [B.visibility(a, echogenic, seeds=(0,), patient=patient) for a in ANGLES]


def test_needle_is_not_echogenic_by_default():
    assert Needle().echogenic is False


def test_standard_needle_visibility_falls_with_steeper_insertion(patient):
    v = _curve(patient, False)
    assert all(b < a for a, b in zip(v, v[1:], strict=False)), v
    assert v[0] > 3 * v[-1], v


def test_echogenic_needle_keeps_visibility(patient):
    std = {a: B.visibility(a, False, seeds=(0,), patient=patient) for a in (15, 60)}
    eco = {a: B.visibility(a, True, seeds=(0,), patient=patient) for a in (15, 60)}
    assert eco[60] > std[60] + 20, (eco, std)
    assert (eco[15] - eco[60]) < (std[15] - std[60]), (eco, std)


def test_nichols_ranges(patient):
    # Nichols 2003: 60–76 EU at 90° to the beam (α = 0°) for all needles; at 15° to the
    # beam (α = 75°) 5 EU (plain) … 40–43 EU (dimpled). Tolerances for one seed.
    assert 55 <= B.visibility(0, False, seeds=(0,), patient=patient) <= 80
    assert B.visibility(75, False, seeds=(0,), patient=patient) <= 12
    assert 30 <= B.visibility(75, True, seeds=(0,), patient=patient) <= 50
