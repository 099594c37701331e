"""Craniovertebral junction: the dens and superior facets of C2, the atlas (C1) and the
occiput (skull base around the foramen magnum, condyles, squama, mastoids).

Atlas and occiput are built in the C1 frame (origin on the dens axis at the height of the
atlas ring; u right, v anterior, w superior). Typical adult sizes (assumptions within
published ranges): atlas outer width ~78 mm across the transverse processes, sagittal
canal ~30 mm including the dens, atlanto-dental interval 2 mm; foramen magnum ~30 × 36 mm.
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.phantom.cervical_geom import SpineLayout, _rot, tube
from needleguide.anatomy.phantom.cervical_vertebra import BONE, LAB, SIDES
from needleguide.anatomy.phantom.painter import Stroke
from needleguide.anatomy.phantom.sdf import (
    Box,
    Capsule,
    Ellipsoid,
    EllipticCylinder,
    HalfSpace,
    Intersect,
    Subtract,
    Union,
)

# skull (outer table) in the C1 frame: centre and semi-axes, mm (assumption)
SKULL_C = (0.0, -12.0, 72.0)
SKULL_R = (64.0, 82.0, 60.0)
SKULL_T = 6.5  # occipital bone thickness, mm (assumption)
FM_C = (0.0, -13.0, 15.0)
FM_R = (15.0, 18.0)


def c2_extras(lay: SpineLayout) -> tuple[list[Stroke], list[Stroke], dict[str, np.ndarray]]:
    """Dens and C2 superior articular facets (bone), C1–C2 lateral joint spaces."""
    c2 = lay.levels["C2"]
    H = c2.H
    body = LAB("vertebral_body")
    bone = [Stroke(Capsule(c2.P(0, 0.5, H / 2 - 2.0), c2.P(0, 1.0, H / 2 + 13.0), 5.0, 4.3), body)]
    joints, centres = [], {}
    for side, s in SIDES.items():
        bone.append(Stroke(Box(c2.at(s * 15.5, -0.5, H / 2 - 1.0), half_mm=(6.5, 8.0, 2.5),
                               round_mm=1.5), LAB("superior_articular_process")))
        c = c2.at(s * 16.0, -0.5, H / 2 + 2.25)
        joints.append(Stroke(Box(c, half_mm=(6.0, 7.5, 0.75), round_mm=0.5),
                             LAB("facet_joint_space"), never_into=BONE))
        centres[side] = c[:3, 3].copy()
    return bone, joints, centres


def atlas(lay: SpineLayout) -> tuple[list[Stroke], dict]:
    """C1: anterior arch and tubercle, lateral masses, posterior arch and tubercle,
    transverse processes with the transverse foramen."""
    c1 = lay.levels["C1"]
    out: list[Stroke] = []
    arch = [c1.P(13.2 * np.cos(a), -3.0 + 13.2 * np.sin(a), 0.0)
            for a in np.radians([28, 55, 90, 125, 152])]
    out.append(Stroke(tube(np.array(arch), np.full(5, 3.2)), LAB("lamina")))
    out.append(Stroke(Ellipsoid(c1.at(0, 11.0, 0), radii=(5.0, 3.0, 5.5)), LAB("spinous_process")))
    info: dict = {}
    for side, s in SIDES.items():
        R = _rot(2, s * 20.0)
        out.append(Stroke(Ellipsoid(c1.at(s * 17.5, -3.5, 0.0, R), radii=(7.0, 9.5, 7.5)),
                          LAB("vertebral_body")))
        post = np.array([c1.P(s * 15.5, -10.0, 0.5), c1.P(s * 12.5, -20.0, 1.0),
                         c1.P(s * 6.5, -27.0, 1.5), c1.P(0.0, -29.0, 1.5)])
        out.append(Stroke(tube(post, np.full(4, 3.3)), LAB("lamina")))
        box = Box(c1.at(s * 31.0, -4.0, 0.0), half_mm=(8.5, 5.5, 4.0), round_mm=1.5)
        cut = Capsule(c1.P(s * 27.0, -4.0, -7.0), c1.P(s * 27.0, -4.0, 7.0), 3.1)
        out.append(Stroke(Subtract(box, cut), LAB("transverse_process")))
        info[f"transverse_foramen.{side}"] = c1.P(s * 27.0, -4.0, 0.0).round(2).tolist()
        info[f"lateral_mass.{side}"] = c1.P(s * 17.5, -3.5, 0.0).round(2).tolist()
        info[f"tp_tip.{side}"] = c1.P(s * 39.5, -4.0, 0.0).round(2).tolist()
    out.append(Stroke(Ellipsoid(c1.at(0, -30.0, 1.5), radii=(4.5, 3.5, 5.0)),
                      LAB("spinous_process")))
    info["spinous_tip"] = c1.P(0, -33.5, 1.5).round(2).tolist()
    c1.info.update(info)
    return out, info


def skull_shape(lay: SpineLayout, grow_mm: float = 0.0) -> Ellipsoid:
    """The skull's outer table (ellipsoid) in patient coordinates, grown by ``grow_mm``."""
    c1 = lay.levels["C1"]
    return Ellipsoid(c1.at(*SKULL_C), radii=tuple(r + grow_mm for r in SKULL_R))


def occiput(lay: SpineLayout) -> tuple[list[Stroke], list[Stroke], dict[str, np.ndarray]]:
    """Occipital bone (posterior cranial fossa floor and squama, basiocciput/clivus,
    condyles, mastoids) and the atlanto-occipital joint spaces."""
    c1 = lay.levels["C1"]
    occ = LAB("occiput")
    fm = EllipticCylinder(c1.at(*FM_C), radii=FM_R, half_height_mm=14.0)
    shell = Subtract(skull_shape(lay), Union([skull_shape(lay, -SKULL_T), fm]))
    post = Intersect([shell, HalfSpace(c1.P(0, 8.0, 0), c1.V(0, 1, 0))])
    bone = [Stroke(skull_shape(lay, -SKULL_T), LAB("soft_tissue")), Stroke(post, occ)]
    # basiocciput / clivus: plate from the basion up and forward
    a, b = np.array([0.0, 6.5, 17.0]), np.array([0.0, 24.0, 46.0])
    x = c1.V(*(b - a))
    L = float(np.linalg.norm(x))
    x /= L
    y = c1.V(1, 0, 0)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, np.cross(x, y), c1.P(*((a + b) / 2))
    bone.append(Stroke(Subtract(Box(T, half_mm=(L / 2 + 3.0, 12.0, 5.0), round_mm=2.0), fm), occ))
    joints, centres = [], {}
    for side, s in SIDES.items():
        R = _rot(2, s * 20.0)
        bone.append(Stroke(Ellipsoid(c1.at(s * 15.0, -2.5, 13.5, R), radii=(5.5, 10.0, 4.8)), occ))
        bone.append(Stroke(Ellipsoid(c1.at(s * 47.0, -8.0, 24.0), radii=(8.0, 10.0, 13.0)), occ))
        c = c1.at(s * 16.0, -3.0, 8.2, R)
        joints.append(Stroke(Ellipsoid(c, radii=(5.5, 8.5, 1.6)), LAB("facet_joint_space"),
                             never_into=BONE))
        centres[side] = c[:3, 3].copy()
    return bone, joints, centres
