"""Bone shapes of the lumbar phantom, checked by numbers on rendered labels: waisted bodies
with cupped end plates, elliptic pedicles, one spinous process per level, sacral foramina
through the sacrum, a curved (not rod-like) iliac wing; and the new primitives paint the
same labels hierarchically as voxel by voxel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from needleguide import geometry
from needleguide.anatomy.phantom import build_model
from needleguide.anatomy.phantom.painter import Stroke, grid_points, render
from needleguide.anatomy.phantom.sdf_bone import CurvedPlate, TaperedBox, WaistedBody

LUMBAR = ("L1", "L2", "L3", "L4", "L5")


@pytest.fixture(scope="module")
def model():
    return build_model("lumbar", bmi=24.0, degeneration=0, seed=0, spacing_mm=1.0)


@pytest.fixture(scope="module")
def patient(model):
    return model.to_patient()


def _plane(model, centre, e1, e2, half_mm, step=0.25):
    """Labels on a square plane through ``centre`` spanned by e1 (rows) and e2 (columns)."""
    n = int(2 * half_mm / step) + 1
    aff = np.eye(4)
    aff[:3, 0] = np.asarray(e1, float) * step
    aff[:3, 1] = np.asarray(e2, float) * step
    aff[:3, 2] = np.cross(e1, e2) * step
    aff[:3, 3] = np.asarray(centre, float) - half_mm * (np.asarray(e1) + np.asarray(e2))
    return model.render((n, n, 1), aff)[:, :, 0], step


def _row_width(mask, row, step):
    """Width (mm) of the mask along one row."""
    return mask[row].sum() * step


def _run_height(mask, col, centre, step):
    """Height (mm) of the run of the mask in one column through the centre row."""
    line = mask[:, col]
    lo = hi = centre
    while lo > 0 and line[lo - 1]:
        lo -= 1
    while hi < len(line) - 1 and line[hi + 1]:
        hi += 1
    return (hi - lo + 1) * step


def test_vertebral_bodies_are_waisted_with_cupped_end_plates(model):
    T = model.tissues
    vb = T.label("vertebral_body")
    for name in LUMBAR:
        V = model.vertebrae[name]
        H, W = V.body_height_mm, V.body_width_mm
        # coronal plane through the body centre: rows = superior, columns = right
        lab, step = _plane(model, V.center_mm, V.superior, V.right, 0.5 * W + 6.0)
        body = lab == vb
        c = body.shape[0] // 2

        def idx(mm, step=step, c=c):
            return c + int(round(mm / step))

        mid = _row_width(body, c, step)
        rims = min(_row_width(body, idx(0.5 * H - 2.0), step),
                   _row_width(body, idx(-0.5 * H + 2.0), step))
        assert rims - mid >= 3.0, (name, mid, rims)  # concave walls: the waist
        assert 0.85 * W <= mid <= 0.95 * W, (name, mid, W)
        # end plates: the centre is lower than the ring apophysis (cupped)
        centre_h = _run_height(body, c, c, step)
        rim_h = _run_height(body, idx(0.4 * W), c, step)
        assert rim_h - centre_h >= 1.5, (name, centre_h, rim_h)
        assert H - 3.0 <= centre_h <= H - 1.5, (name, centre_h, H)


def test_pedicles_are_elliptic_and_taller_than_wide_above_l5(model):
    T = model.tissues
    ped = T.label("pedicle")
    for name in LUMBAR:
        V = model.vertebrae[name]
        for side in ("right", "left"):
            c = np.asarray(V.extra[f"pedicle_{side}"], float) + 3.0 * V.anterior
            lab, step = _plane(model, c, V.superior, V.right, 14.0)
            m = lab == ped
            lab_m, k = ndimage.label(m)
            assert k >= 1
            sizes = ndimage.sum(m, lab_m, range(1, k + 1))
            m = lab_m == (1 + int(np.argmax(sizes)))  # the pedicle around the centre
            rows, cols = np.nonzero(m)
            h = (rows.max() - rows.min() + 1) * step
            w = (cols.max() - cols.min() + 1) * step
            fill = m.sum() * step * step / (h * w)
            # an ellipse fills pi/4 = 0.785 of its bounding box (a box: 1.0)
            assert 0.70 <= fill <= 0.86, (name, side, fill)
            if name != "L5":  # L5 pedicles are wider than tall (Panjabi 1992)
                assert h > w, (name, side, h, w)


def test_each_spinous_process_is_a_separate_blade(model, patient):
    T = model.tissues
    sp = patient.labels == T.label("spinous_process")
    comp, k = ndimage.label(sp)
    names = [n for n in model.vertebrae if n != "S1"]
    assert k == len(names)
    ids = set()
    for n in names:
        tip = model.landmarks[f"{n}.spinous_tip"].position_mm
        i = comp[tuple(np.rint(patient.voxel_of(tip)).astype(int))]
        assert i != 0, n
        ids.add(int(i))
    assert len(ids) == len(names)  # one blade per level
    # separated by a gap (interspinous ligament), not merely touching diagonally
    grown, k2 = ndimage.label(ndimage.binary_dilation(sp, iterations=2))
    assert k2 == len(names)


def test_sacral_foramina_pass_through_the_sacrum(model, patient):
    T = model.tissues
    lab = patient.labels
    sf = lab == T.label("sacral_foramen")
    comp, k = ndimage.label(sf)
    assert k >= 8
    front = ndimage.binary_dilation(lab == T.label("soft_tissue"), iterations=1)
    back = ndimage.binary_dilation(np.isin(lab, [T.label("muscle"),
                                                T.label("paraspinal_muscle"),
                                                T.label("subcutaneous_fat")]), iterations=1)
    seen = set()
    for i in range(1, 5):
        for side in ("right", "left"):
            p = model.landmarks[f"S{i}.foramen.{side}"].position_mm
            cid = comp[tuple(np.rint(patient.voxel_of(p)).astype(int))]
            assert cid != 0, (i, side)
            seen.add(int(cid))
            hole = comp == cid
            # from the pelvic surface (ventral foramen) to the back (dorsal foramen)
            assert (hole & front).any() and (hole & back).any(), (i, side)
    assert len(seen) == 8


def test_iliac_wing_is_not_a_straight_rod_in_the_oblique(patient):
    """The longest path through the upper iliac wing (crest and wing, 3–35 mm below the
    crest top) along horizontal rays at 20–40° from AP (the oblique views) stays that of a
    curved plate: the old flat elliptic wing gave ~100 mm at 30° (the 'rod')."""
    T = patient.tissues
    il = patient.labels == T.label("ilium")
    z = np.nonzero(il.any(axis=(0, 1)))[0]
    top = il[:, :, z.max() - 35: z.max() - 3]
    longest = 0.0
    for ang in (20.0, 30.0, 40.0):
        for s in (1, -1):
            r = ndimage.rotate(top.astype(np.float32), s * ang, axes=(0, 1), order=1,
                               reshape=True)
            longest = max(longest, float(r.sum(axis=1).max()))
    assert longest < 45.0, longest


@pytest.mark.parametrize("shape", [
    WaistedBody(geometry.make_transform(geometry.rot_x(0.3)), half_width=23.0,
                half_depth_ant=17.0, half_depth_post=17.0, half_height=12.5),
    TaperedBox(geometry.make_transform(geometry.rot_y(0.5)), half_lo=(9.0, 3.5),
               half_hi=(5.0, 2.5), half_height=12.0, round_mm=1.5),
    CurvedPlate(geometry.make_transform(geometry.rot_z(0.4)), half_x=40.0, half_z=30.0,
                rx=120.0, rz=160.0, s_mm=5.0, t_centre=2.5, t_rim=6.0),
])
def test_new_primitives_paint_hierarchically_like_voxel_by_voxel(shape):
    n = 110
    aff = np.diag([0.5, 0.5, 0.5, 1.0])
    aff[:3, 3] = -(n - 1) / 2 * 0.5
    lab = render([Stroke(shape, 1)], (n, n, n), aff)
    pts = grid_points((n, n, n), aff, np.zeros(3, int), np.array((n, n, n)))
    direct = (shape.sdf(pts) <= 0).reshape((n, n, n))
    assert direct.sum() > 1000
    assert (lab.astype(bool) != direct).sum() == 0
