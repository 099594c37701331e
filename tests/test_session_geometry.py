"""The operator's geometry: the depth along the shaft seen by a tip ray, and how two views'
depths are combined after the check pair."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide.session.imaging import combine_depths, depth_along

unit = st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)).filter(
    lambda v: np.linalg.norm(v) > 0.3)


@settings(max_examples=60, deadline=None)
@given(axis=unit, ray=unit, s=st.floats(0.0, 150.0), back=st.floats(200.0, 1200.0))
def test_a_ray_through_a_point_of_the_shaft_gives_its_depth(axis, ray, s, back):
    a = np.asarray(axis) / np.linalg.norm(axis)
    d = np.asarray(ray) / np.linalg.norm(ray)
    if abs(a @ d) > 0.98:  # nearly along the shaft: no depth information (tested below)
        return
    entry = np.array([10.0, -80.0, 30.0])
    p = entry + s * a
    got = depth_along((p - back * d, d), entry, a)
    assert got is not None
    assert abs(got[0] - s) < 1e-6 * max(1.0, s)
    assert abs(got[1] - (1.0 - (a @ d) ** 2)) < 1e-9


def test_a_ray_along_the_shaft_gives_no_depth():
    a = np.array([0.0, 1.0, 0.0])
    assert depth_along((np.array([0.0, -500.0, 0.0]), a), np.zeros(3), a) is None


def test_views_that_agree_are_averaged_else_the_side_on_view_wins():
    # agree within 3 mm: sin²-weighted mean
    assert abs(combine_depths([(50.0, 0.25), (52.0, 0.75)], 3.0) - 51.5) < 1e-9
    # disagree: the view seeing the shaft most nearly side-on (larger sin²)
    assert combine_depths([(62.0, 0.31), (50.0, 0.72)], 3.0) == 50.0
    assert combine_depths([None, (48.0, 0.5)], 3.0) == 48.0
    assert combine_depths([None, None], 3.0) is None
