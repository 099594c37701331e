"""A small synthetic spine segment (labels only) to exercise the injectate model without
the full phantom: a dural sac of CSF with a cauda equina, a ring of epidural fat with a
valveless venous plexus, a bony canal wall, a segmental artery with a radicular branch
(centerlines), a nerve root leaving through a foramen, a facet joint in its capsule, and
paraspinal muscle around."""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.patient import Centerline, Landmark, Patient
from needleguide.anatomy.tissues import default_tissue_table


def _seg_dist(p: np.ndarray, a, b) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def synthetic_spine(spacing_mm: float = 1.0, length_mm: float = 120.0) -> Patient:
    """Labels on a RAS grid (x ±35, y ±30, z ±length/2 mm) at ``spacing_mm``."""
    tt = default_tissue_table()
    L = tt.label
    h = spacing_mm
    lo = np.round(np.array([-35.0, -30.0, -length_mm / 2]) / h) * h
    n = np.round(np.array([70.0, 60.0, length_mm]) / h).astype(int) + 1
    aff = np.diag([h, h, h, 1.0])
    aff[:3, 3] = lo
    ijk = np.stack(np.meshgrid(*[np.arange(k) for k in n], indexing="ij"), axis=-1)
    p = ijk * h + lo
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    r = np.hypot(x, y)
    lab = np.full(tuple(n), L("paraspinal_muscle"), np.uint8)
    lab[y > 22] = L("soft_tissue")
    lab[(r > 10.5) & (r <= 15)] = L("lamina")
    lab[(r <= 26) & (y > 10) & (np.abs(x) < 20)] = L("vertebral_body")
    lab[r <= 10.5] = L("epidural_fat")
    veins = (np.hypot(x - 5.0, y - 8.5) <= 1.3) | (np.hypot(x + 5.0, y - 8.5) <= 1.3)
    # transverse connections of the plexus every 30 mm
    for zc in (-30.0, 0.0, 30.0):
        veins |= (np.abs(z - zc) <= 1.3) & (np.abs(y - 8.5) <= 1.3) & (np.abs(x) <= 5.0)
    lab[veins & (r <= 10.5)] = L("epidural_venous_plexus")
    # a nerve root leaving through a foramen (fat) in the canal wall on the right
    r0, r1 = (8.0, 0.0, -20.0), (34.0, 0.0, -32.0)
    lab[(_seg_dist(p, r0, r1) <= 4.0) & (r > 9.0)] = L("foramen")
    lab[(_seg_dist(p, r0, r1) <= 1.5) & (r > 8.0)] = L("nerve_root")
    lab[r <= 7.5] = L("dura")
    lab[r <= 6.5] = L("csf")
    lab[np.hypot(x, y + 1.0) <= 2.5] = L("spinal_cord")
    # facet joint on the right: capsule, joint space, articular processes
    fx, fy = 19.0, -16.0
    box = (np.abs(x - fx) <= 4.5) & (np.abs(y - fy) <= 7) & (np.abs(z) <= 10)
    lab[box] = L("facet_capsule")
    lab[box & (x < fx - 1.0) & (np.abs(y - fy) <= 5) & (np.abs(z) <= 8)] = \
        L("inferior_articular_process")
    lab[box & (x > fx + 1.0) & (np.abs(y - fy) <= 5) & (np.abs(z) <= 8)] = \
        L("superior_articular_process")
    lab[box & (np.abs(x - fx) <= 1.0) & (np.abs(y - fy) <= 5) & (np.abs(z) <= 8)] = \
        L("facet_joint_space")
    # segmental artery (left, lateral to the canal) with a radicular branch
    a0, a1 = (-34.0, 14.0, 5.0), (-16.0, 14.0, 5.0)
    b1 = (-16.0, 14.0, 5.0)
    b2, b3 = (-22.0, 14.0, 30.0), (-24.0, 20.0, -25.0)
    art = _seg_dist(p, a0, a1) <= 1.5
    art |= _seg_dist(p, b1, b2) <= 1.0
    art |= _seg_dist(p, b1, b3) <= 1.0
    lab[art & (lab != L("vertebral_body"))] = L("segmental_artery")
    lab[art] = L("segmental_artery")
    cl = {
        "segmental_artery.left": Centerline("segmental_artery.left", "artery",
                                            np.array([a0, a1]), np.array([1.5, 1.5]),
                                            L("segmental_artery"), 150.0, "aorta"),
        "radicular_artery.left.up": Centerline("radicular_artery.left.up", "artery",
                                               np.array([b1, b2]), np.array([1.0, 1.0]),
                                               L("segmental_artery"), 150.0,
                                               "segmental_artery.left"),
        "radicular_artery.left.down": Centerline("radicular_artery.left.down", "artery",
                                                 np.array([b1, b3]), np.array([1.0, 1.0]),
                                                 L("segmental_artery"), 150.0,
                                                 "segmental_artery.left"),
    }
    lm = {
        "epidural.posterior": Landmark("epidural.posterior", np.array([0.0, -9.0, 0.0]),
                                       "epidural_fat"),
        "thecal_sac.posterior": Landmark("thecal_sac.posterior", np.array([0.0, -5.0, 0.0]),
                                         "csf"),
        "facet.right": Landmark("facet.right", np.array([fx, fy, 0.0]), "facet_joint_space"),
        "segmental_artery.left": Landmark("segmental_artery.left",
                                          np.array([-30.0, 14.0, 5.0]), "segmental_artery"),
        "venous_plexus.right": Landmark("venous_plexus.right", np.array([5.0, 8.5, 12.0]),
                                        "epidural_venous_plexus"),
        "nerve_root.right": Landmark("nerve_root.right", np.array([27.0, 0.0, -28.8]),
                                     "nerve_root"),
        "muscle.right": Landmark("muscle.right", np.array([25.0, -5.0, 20.0]),
                                 "paraspinal_muscle"),
    }
    return Patient(labels=lab, VoxelToPatient=aff, tissues=tt, landmarks=lm, centerlines=cl,
                   meta={"source": "synthetic_spine"})
