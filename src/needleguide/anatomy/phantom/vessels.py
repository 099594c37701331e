"""Aorta, IVC (with the common iliacs), lumbar segmental arteries with their radicular
branch into each foramen, and the anterior internal (epidural) venous plexus.

Mean blood velocities (mm/s), all *assumptions* of the right order of magnitude: resting
infrarenal aortic flow ~1 L/min through ~2.8 cm² gives ~60–100 mm/s time-averaged (MRI flow
studies: Taylor CA et al., Ann Biomed Eng 2002;30:402; peak systolic ~1000 mm/s), so the
aorta uses 100 mm/s; infrarenal IVC ~60 mm/s (Cheng CP et al., Am J Physiol Heart Circ
Physiol 2003;284:H1161); segmental (lumbar) arteries 100 mm/s, radicular arteries 50 mm/s
and the epidural plexus 10 mm/s have no source.
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.patient import Centerline
from needleguide.anatomy.phantom.pelvis import Pelvis
from needleguide.anatomy.phantom.sdf import Tube
from needleguide.anatomy.phantom.spine import Level
from needleguide.anatomy.phantom.vertebra import BONE, LAB, Phases

V_AORTA = 100.0  # assumption (see above)
V_IVC = 60.0  # assumption (see above)
V_SEGMENTAL = 100.0  # assumption
V_RADICULAR = 50.0  # assumption
V_PLEXUS = 10.0  # assumption


def great_vessels(ph: Phases, levels: dict[str, Level], pv: Pelvis, r_aorta: float = 9.5,
                  r_ivc: float = 10.5) -> dict[str, Centerline]:
    """Aorta to its bifurcation at L4, common iliac arteries; IVC from the L5 confluence."""
    out: dict[str, Centerline] = {}
    names = ["T11", "T12", "L1", "L2", "L3", "L4"]
    pa = []
    pv_ = []
    for n in names:
        lv = levels[n]
        d = lv.dims
        pa.append(lv.P(-14.0, d.body_depth / 2 + r_aorta + 2.0, 0.0))
        pv_.append(lv.P(22.0, d.body_depth / 2 + r_ivc + 3.0, 0.0))
    L4, L5 = levels["L4"], levels["L5"]
    bif = L4.P(-6.0, L4.dims.body_depth / 2 + r_aorta + 3.0, -L4.dims.body_height / 2)
    pa.append(bif)
    aorta = np.array(pa)
    ra = np.linspace(r_aorta + 1.5, r_aorta, len(aorta))
    out["aorta"] = Centerline("aorta", "artery", aorta, ra, LAB["aorta"], V_AORTA)
    ph.add("vessel", Tube(aorta, ra), "aorta", never_into=BONE)
    for s, side in ((1, "right"), (-1, "left")):
        hip = pv.hips[side]
        sij = pv.segments[1][:3, 3] + np.array([s * 45.0, 40.0, 0.0])
        ci = np.array([bif, L5.P(s * 22.0, L5.dims.body_depth / 2 + 9.0, 0.0), sij,
                       hip + np.array([-s * 5.0, 45.0, 25.0])])
        rc = np.array([6.5, 6.0, 5.0, 4.5])
        out[f"common_iliac_artery.{side}"] = Centerline(
            f"common_iliac_artery.{side}", "artery", ci, rc, LAB["aorta"], V_AORTA,
            parent="aorta")
        ph.add("vessel", Tube(ci, rc), "aorta", never_into=BONE)
        civ = np.array([hip + np.array([-s * 12.0, 40.0, 20.0]), sij - np.array([0, 8, 0]),
                        L5.P(s * 16.0 + 8.0, L5.dims.body_depth / 2 + 8.0, -6.0),
                        L5.P(10.0, L5.dims.body_depth / 2 + 10.0, L5.dims.body_height / 2)])
        rv = np.array([6.0, 6.5, 7.0, 8.0])
        out[f"common_iliac_vein.{side}"] = Centerline(
            f"common_iliac_vein.{side}", "vein", civ, rv, LAB["ivc"], V_IVC,
            parent="ivc")
        ph.add("vessel", Tube(civ, rv), "ivc", never_into=BONE)
    conf = L5.P(10.0, L5.dims.body_depth / 2 + 10.0, L5.dims.body_height / 2)
    ivc = np.array([conf] + pv_[::-1])
    ri = np.full(len(ivc), r_ivc)
    out["ivc"] = Centerline("ivc", "vein", ivc, ri, LAB["ivc"], V_IVC)
    ph.add("vessel", Tube(ivc, ri), "ivc", never_into=BONE)
    return out


def segmental_arteries(ph: Phases, lv: Level, fp: dict, s: int, side: str,
                       aorta_pt: np.ndarray) -> dict[str, Centerline]:
    """Lumbar artery of ``lv`` (side s) around the body waist to the foramen below its
    pedicle, with the radicular (spinal) branch into the foramen and canal."""
    d = lv.dims
    a, b = d.body_width / 2 + 2.5, d.body_depth / 2 + 2.5
    z = -0.1 * d.body_height
    ring = []
    for ang in np.radians([70, 40, 10, -20, -45]):
        ring.append(lv.P(s * a * np.cos(ang) * (1.05 if ang < 0 else 1.0),
                         b * np.sin(ang), z))
    # continue behind the foramen region to the dorsal muscles
    near_for = fp["drg"] + fp["lat"] * 10.0 + fp["ant"] * 3.0
    dorsal = near_for - fp["ant"] * 22.0 + fp["lat"] * 6.0
    pts = np.array([aorta_pt, *ring, near_for, dorsal])
    radii = np.linspace(1.4, 0.9, len(pts))
    name = f"{lv.name}.segmental_artery.{side}"
    out = {name: Centerline(name, "artery", pts, radii, LAB["segmental_artery"], V_SEGMENTAL,
                            parent="aorta")}
    ph.add("vessel", Tube(pts, np.maximum(radii, 1.0)), "segmental_artery",
           never_into=(*BONE, LAB["drg"], LAB["nerve_root"]))
    # radicular / spinal branch: into the foramen (above the ganglion) and the canal
    rpts = np.array([near_for, fp["drg"] + fp["lat"] * 4.0 - fp["down"] * 4.0,
                     fp["ped_bottom"] + fp["down"] * 3.0 - fp["lat"] * 6.0 + fp["ant"] * 2.0])
    rr = np.array([0.8, 0.7, 0.6])
    rname = f"{lv.name}.radicular_artery.{side}"
    out[rname] = Centerline(rname, "artery", rpts, rr, LAB["segmental_artery"], V_RADICULAR,
                            parent=name)
    ph.add("nerve_small", Tube(rpts, np.full(3, 0.8)), "segmental_artery",
           only_into=(LAB["foramen"], LAB["epidural_fat"], LAB["muscle"], LAB["soft_tissue"],
                      LAB["psoas"], LAB["paraspinal_muscle"]))
    return out


def venous_plexus(ph: Phases, levels: list[Level]) -> dict[str, Centerline]:
    """Anterior internal vertebral venous plexus: two channels along the back of the bodies."""
    out = {}
    for s, side in ((1, "right"), (-1, "left")):
        pts = []
        for lv in levels:
            d = lv.dims
            y = lv.canal_y + d.canal_depth / 2 - 1.3
            for z in (d.body_height / 2, 0.0, -d.body_height / 2 - d.disc_below / 2):
                xoff = d.canal_width / 2 - (3.5 if z == 0.0 else 5.0)
                pts.append(lv.P(s * xoff, y, z))
        P = np.array(pts)
        R = np.full(len(P), 1.1)
        name = f"epidural_venous_plexus.{side}"
        out[name] = Centerline(name, "vein", P[::-1], R, LAB["epidural_venous_plexus"],
                               V_PLEXUS)
        ph.add("vessel", Tube(P, R), "epidural_venous_plexus",
               only_into=(LAB["epidural_fat"],))
    return out
