"""The lumbar phantom: T11 to the coccyx with the pelvis and both hips.

``build(params)`` returns a :class:`~needleguide.anatomy.phantom.body.LayeredPhantomModel`:
a fast body-layer pass (skin, subcutaneous fat, trunk) followed by ordered SDF strokes
(muscles, organs, bones, discs, joints, foramina, ligaments, canal, thecal sac, nerves,
vessels). Patient frame RAS in mm, origin at the centre of the L4–L5 disc. Dimensions and
sources: anthropometry.py and docs/anatomy.md.
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.patient import Centerline, Vertebra
from needleguide.anatomy.phantom import (
    ilium,
    landmarks_lumbar,
    neuraxis,
    pelvis,
    softtissue,
    vessels,
)
from needleguide.anatomy.phantom.anthropometry import DEGENERATION, LEVELS, sample_dimensions
from needleguide.anatomy.phantom.body import LayeredPhantomModel
from needleguide.anatomy.phantom.model import PhantomParams
from needleguide.anatomy.phantom.pelvis import _seg
from needleguide.anatomy.phantom.spine import layout
from needleguide.anatomy.phantom.vertebra import (
    LAB,
    Phases,
    disc_shape,
    facet_strokes,
    vertebra_strokes,
)
from needleguide.anatomy.tissues import default_tissue_table

SIDES = (("right", 1), ("left", -1))


def build(params: PhantomParams) -> LayeredPhantomModel:
    """Build the analytic lumbar phantom for ``params`` (deterministic in ``params.seed``)."""
    rng = np.random.default_rng(params.seed)
    deg = DEGENERATION[int(params.degeneration)]
    dims, pdims, gscale = sample_dimensions(rng)
    sp = layout(dims, rng, deg)
    lv = sp.levels
    pv = pelvis.sacrum_layout(sp, pdims)
    ph = Phases()
    cand: list[tuple[str, np.ndarray, str, str]] = []
    centerlines: dict[str, Centerline] = {}

    # --- bounds
    top = lv["T11"]
    z_top = top.center[2] + top.dims.body_height / 2 + 14.0
    hip_z = min(pv.hips["right"][2], pv.hips["left"][2])
    z_bottom = hip_z - 70.0
    crest_z = 0.5 * (lv["L4"].center[2] + 0.0) + 4.0

    # --- soft tissue first (muscles only paint into the trunk), then bone
    body = softtissue.body_layers(lv, pv, pdims, params.bmi, z_top, z_bottom, rng)
    softtissue.muscle_strokes(ph, lv, pv, pdims, params.bmi)
    softtissue.organ_strokes(ph, lv, rng)
    softtissue.rib_strokes(ph, lv)

    vpts = {}
    for n in LEVELS:
        vpts[n] = vertebra_strokes(ph, lv[n], deg)
    names = list(LEVELS)
    pairs = [(names[i], names[i + 1]) for i in range(len(names) - 1)]
    allv = {**lv, "S1": pv.s1}
    # discs, facets, foramina, posterior ligaments
    for u, b in pairs + [("L5", "S1")]:
        U, B = allv[u], allv[b]
        key = f"{u}-{b}"
        ph.add("disc", disc_shape(U, B), "disc", never_into=(LAB["vertebral_body"],))
        ang = U.dims.facet_angle_below
        for side, s in SIDES:
            fp = facet_strokes(ph, U, B, s, ang, deg)
            cand.append((f"{key}.facet.{side}", fp["facet"], "facet_joint_space",
                         f"{key} zygapophysial (facet) joint space, {side}"))
        fr = neuraxis.foramen_strokes(ph, U, B)
        for side, _s in SIDES:
            cand.append((f"{key}.foramen.{side}", fr[side]["target"], "foramen",
                         f"{key} intervertebral foramen, {side}: safe triangle under the "
                         f"{u} pedicle (transforaminal target)"))
        pl = neuraxis.posterior_ligaments(ph, U, B, deg["flavum_mm"])
        cand.append((f"{key}.interlaminar", pl["interlaminar"], "epidural_fat",
                     f"{key} interlaminar epidural space (midline, posterior epidural fat)"))
        cand.append((f"{key}.disc", disc_center(U, B), "disc", f"{key} intervertebral disc"))
        # roots through this foramen with their ganglia; segmental arteries
        for side, s in SIDES:
            cl, drg = neuraxis.root_and_drg(ph, U, B, fr[side], s, side)
            centerlines[cl.name] = cl
            cand.append((f"{u}.drg.{side}", drg, "drg", f"{u} dorsal root ganglion, {side}"))
    pelvis.sacrum_strokes(ph, pv, deg)
    sac = pelvis.sacral_canal_strokes(ph, pv)
    ipts = ilium.ilium_strokes(ph, pv, pdims, crest_z)
    hpts = ilium.hip_strokes(ph, pv, pdims, z_bottom)
    neuraxis.canal_strokes(ph, [lv[n] for n in LEVELS], pv)

    # sacral roots from the sac to the sacral foramina
    from needleguide.anatomy.phantom.sdf import Tube

    for i in range(4):
        for side, s in SIDES:
            a = _seg(pv, 0, s * 4.0, -pv.thick[0] + 30.0, pv.seg_half_h - 4.0 - 8.0 * i)
            b = sac[f"S{i + 1}.foramen_ventral.{side}"]
            mid = _seg(pv, i, s * (13.0 - 2.0 * i), -pv.thick[i] + 30.0 - 2.5 * i,
                       -pv.seg_half_h + 3.0)
            pts = np.array([a, mid, b])
            r = np.full(3, 1.6 - 0.2 * i)
            ph.add("neural", Tube(pts, r), "nerve_root",
                   only_into=(LAB["epidural_fat"], LAB["sacral_foramen"], LAB["dura"],
                              LAB["csf"], LAB["soft_tissue"], LAB["muscle"]))
            name = f"S{i + 1}.nerve_root.{side}"
            centerlines[name] = Centerline(name, "nerve", pts, r, LAB["nerve_root"])
            cand.append((f"S{i + 1}.foramen.{side}", sac[f"S{i + 1}.foramen.{side}"],
                         "sacral_foramen", f"S{i + 1} posterior sacral foramen, {side}"))

    # vessels
    centerlines.update(vessels.great_vessels(ph, lv, pv))
    aorta = centerlines["aorta"].points_mm
    for u, b in pairs[1:] + [("L5", "S1")]:
        U, B = allv[u], allv[b]
        for side, s in SIDES:
            fp = neuraxis.foramen_points(U, B, s)
            if u == "L5":
                src = centerlines[f"common_iliac_artery.{side}"].points_mm[1]
            else:
                k = int(np.argmin(np.abs(aorta[:, 2] - U.center[2])))
                src = aorta[k] + np.array([0.0, -8.0, 0.0])
            centerlines.update(vessels.segmental_arteries(ph, U, fp, s, side, src))
    centerlines.update(vessels.venous_plexus(ph, [lv[n] for n in LEVELS]))

    # medial branches: T12..L4 over the SAP–TP junction below, L5 over the sacral ala
    order = names + ["S1"]
    for i, n in enumerate(order[1:-1], start=1):
        B = allv[order[i + 1]]
        for side, s in SIDES:
            if B.name == "S1":
                T = pv.segments[0]
                p1 = _seg(pv, 0, s * 30.0, -pv.thick[0] + 14.0, pv.seg_half_h - 4.0)
                cl, tgt = neuraxis.medial_branch(ph, f"{n}.medial_branch.{side}", None, s,
                                                 side, (p1, T[:3, 2], T[:3, 0] * s))
            else:
                cl, tgt = neuraxis.medial_branch(ph, f"{n}.medial_branch.{side}", B, s, side,
                                                 facet_growth=deg["facet_growth"])
            centerlines[cl.name] = cl
            cand.append((cl.name, tgt, "medial_branch",
                         f"{n} medial branch at the {B.name} superior articular process–"
                         f"transverse process junction, {side}" if B.name != "S1" else
                         f"L5 dorsal ramus at the sacral ala–S1 SAP junction, {side}"))

    # remaining landmarks
    for n in LEVELS:
        P = vpts[n]
        cand.append((f"{n}.spinous_tip", P["spinous_tip"], "spinous_process",
                     f"{n} spinous process tip"))
        for side, _s in SIDES:
            cand.append((f"{n}.pedicle.{side}", P[f"pedicle_{side}"], "pedicle",
                         f"{n} pedicle centre, {side}"))
            cand.append((f"{n}.lamina.{side}", P[f"lamina_{side}"], "lamina",
                         f"{n} lamina, {side}"))
            if n.startswith("T"):
                continue
            cand.append((f"{n}.transverse_process.{side}", P[f"tp_tip_{side}"],
                         "transverse_process", f"{n} transverse process tip, {side}"))
    for side, _s in SIDES:
        cand.append((f"sij.{side}.inferior", ipts[f"sij.{side}.inferior"], "sij_space",
                     f"inferior (posterior) third of the sacroiliac joint, {side}"))
        cand.append((f"sij.{side}.superior", ipts[f"sij.{side}.superior"], "sij_space",
                     f"upper sacroiliac joint, {side}"))
        cand.append((f"hip.{side}.femoral_neck", hpts[f"hip.{side}.femoral_neck"],
                     "hip_capsule", f"anterior femoral head-neck junction inside the hip "
                     f"capsule, {side} (intra-articular hip target)"))
        cand.append((f"hip.{side}.femoral_head", hpts[f"hip.{side}.center"], "femoral_head",
                     f"femoral head centre, {side}"))
        cand.append((f"asis.{side}", ipts[f"asis.{side}"], "ilium",
                     f"anterior superior iliac spine, {side}"))
        cand.append((f"iliac_crest.{side}", ipts[f"iliac_crest.{side}"], "ilium",
                     f"highest point of the iliac crest, {side} (intercristal line)"))
    cand.append(("sacral_hiatus", sac["sacral_hiatus"], "sacral_hiatus",
                 "sacral hiatus, below the sacrococcygeal ligament (caudal epidural target)"))

    strokes = ph.ordered()
    tissues = default_tissue_table()
    landmarks = landmarks_lumbar.refine(cand, strokes, body, tissues)

    vertebrae = {}
    for n in LEVELS:
        L = lv[n]
        d = L.dims
        P = vpts[n]
        vertebrae[n] = Vertebra(n, L.center, L.up, L.ant, d.body_height, d.body_width,
                                d.body_depth, extra=_extra(P))
    s1 = pv.s1
    s1p = {"pedicle_right": _seg(pv, 0, 22.0, -pv.thick[0] + 34.0, 4.0),
           "pedicle_left": _seg(pv, 0, -22.0, -pv.thick[0] + 34.0, 4.0),
           "spinous_tip": _seg(pv, 0, 0.0, -pv.thick[0] + 2.0, -4.0),
           "lamina_center": _seg(pv, 0, 0.0, -pv.thick[0] + 8.0, 0.0)}
    vertebrae["S1"] = Vertebra("S1", s1.center, s1.up, s1.ant, s1.dims.body_height,
                               s1.dims.body_width, s1.dims.body_depth, extra=_extra(s1p))

    # bounds: the body outline's extent with a margin
    zs = np.linspace(z_bottom, z_top, 60)
    ext = []
    for z in zs:
        r = body.at(z)
        ext.append((r["ax"] + r["t_lat"], r["cy"] - r["ay_post"] - r["t_post"],
                    r["cy"] + r["ay_ant"] + r["t_ant"]))
    ext = np.array(ext)
    m = 8.0
    lo = np.array([-ext[:, 0].max() - m, ext[:, 1].min() - m, z_bottom])
    hi = np.array([ext[:, 0].max() + m, ext[:, 2].max() + m, z_top])
    meta = {"origin": "centre of the L4-L5 disc", "global_scale": gscale,
            "sacral_slope_deg": sp.s1_tilt_deg,
            "lordosis_L1_S1_deg": sp.s1_tilt_deg - lv["L1"].tilt_deg,
            "disc_heights_mm": {k: round(v, 2) for k, v in sp.disc_heights.items()},
            "subcutaneous_fat_L4_mm": round(float(body.at(lv["L4"].center[2])["t_post"]), 1),
            "pelvis": {"pelvic_tilt_deg": pdims.pelvic_tilt,
                       "hip_centers_mm": {k: np.round(v, 2).tolist()
                                          for k, v in pv.hips.items()}}}
    return LayeredPhantomModel(params=params, strokes=strokes, bounds_mm=(lo, hi),
                               landmarks=landmarks, centerlines=centerlines,
                               vertebrae=vertebrae, meta=meta, tissues=tissues, body=body)


def disc_center(U, B) -> np.ndarray:
    return 0.5 * ((U.center - U.up * U.dims.body_height / 2)
                  + (B.center + B.up * B.dims.body_height / 2))


def _extra(P: dict) -> dict:
    keys = {"pedicle_right": "pedicle_right", "pedicle_left": "pedicle_left",
            "spinous_tip": "spinous_tip", "lamina_center": "lamina_center",
            "tp_tip_right": "transverse_tip_right", "tp_tip_left": "transverse_tip_left"}
    return {v: np.round(np.asarray(P[k], float), 3).tolist() for k, v in keys.items() if k in P}
