import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide import geometry
from needleguide.anatomy.phantom.painter import Stroke, render
from needleguide.anatomy.phantom.sdf import Box, Capsule, Ellipsoid, EllipticCylinder


def _grid(n, sp):
    aff = np.diag([sp, sp, sp, 1.0])
    aff[:3, 3] = -(n - 1) / 2 * sp
    return (n, n, n), aff


@settings(max_examples=20, deadline=None)
@given(st.floats(5, 20), st.floats(5, 20), st.floats(5, 20), st.floats(-1.5, 1.5))
def test_ellipsoid_volume_matches_analytic(a, b, c, ang):
    shape, aff = _grid(96, 0.5)
    e = Ellipsoid(geometry.make_transform(geometry.rot_z(ang)), radii=(a, b, c))
    lab = render([Stroke(e, 1)], shape, aff)
    vol = lab.sum() * 0.125
    assert abs(vol - 4 / 3 * np.pi * a * b * c) / (4 / 3 * np.pi * a * b * c) < 0.06


def test_hierarchical_paint_equals_direct_on_big_shape():
    shape, aff = _grid(160, 1.0)
    cyl = EllipticCylinder(geometry.make_transform(geometry.rot_x(0.2)), radii=(60, 40),
                           half_height_mm=70, round_mm=3)
    lab = render([Stroke(cyl, 1)], shape, aff)
    from needleguide.anatomy.phantom.painter import grid_points

    pts = grid_points(shape, aff, np.zeros(3, int), np.array(shape))
    direct = (cyl.sdf(pts) <= 0).reshape(shape)
    assert (lab.astype(bool) != direct).sum() == 0


def test_stroke_constraints_and_order():
    shape, aff = _grid(60, 1.0)
    strokes = [
        Stroke(Box(None, half_mm=(20, 20, 20)), 2),
        Stroke(Capsule((-25, 0, 0), (25, 0, 0), 5), 3, only_into=(2,)),
        Stroke(Ellipsoid(None, radii=(8, 8, 8)), 4, never_into=(3,)),
    ]
    lab = render(strokes, shape, aff)
    c = 29
    assert lab[c, c, c] == 3  # capsule wins over box, ellipsoid may not enter capsule
    assert lab[c, c + 7, c] == 4
    assert lab[2, c, c] == 0  # capsule outside the box stays air (only_into)


def test_centre_of_ellipsoid_and_cylinder_is_inside_and_cut_by_subtraction():
    from needleguide.anatomy.phantom.sdf import Subtract

    e = Ellipsoid(None, radii=(4, 6, 8))
    c = EllipticCylinder(None, radii=(3, 5), half_height_mm=10)
    origin = np.zeros((3, 1), np.float32)
    assert e.sdf(origin)[0] == -4
    assert c.sdf(origin)[0] == -3
    cut = Subtract(Box(None, half_mm=(10, 10, 10)), c)
    assert cut.sdf(origin)[0] > 0
