"""The whole-spine phantom: C1 to the coccyx, 12 rib pairs, lungs, pelvis and hips.

``build(params, variants=None)`` joins three models on one spine (RAS mm; origin at the
centre of the lumbar phantom's L4–L5 disc): the lumbar phantom (T11–coccyx, pelvis,
hips) as it is; the thoracic chain T3–T10 built here with the lumbar vertebra builders and
thoracic dimensions (thorax.py, thoracic_dims.py) with the chest (thorax_cage.py); and the
cervical phantom (occiput–T2) moved whole onto the chain's top. The same seed draws the
lumbar and cervical parts as their own phantoms; a third stream draws the thoracic
dimensions, the kyphosis jitter and the numbering variants (``thoracic_dims.SpineVariants``,
at published rates unless ``variants`` is given).

Names follow the count from C1 (the clinical reference): with six lumbar vertebrae the
chain is T3–T11 and the lumbar phantom's vertebrae are renamed one down (its T11 is T12,
its L5 is L6); with 11 rib pairs T12 carries none; with 13 a short rib sits on L1;
a sacralised L5 keeps its name, as does a lumbarised S1. ``meta['variants']`` records them.
"""

from __future__ import annotations

import re

import numpy as np

from needleguide.anatomy.patient import Centerline, Landmark, Vertebra
from needleguide.anatomy.phantom import cervical, lumbar
from needleguide.anatomy.phantom.anthropometry import DEGENERATION, sample_dimensions
from needleguide.anatomy.phantom.body import COLS, BodyLayers, LayeredPhantomModel
from needleguide.anatomy.phantom.cervical_geom import layout as cervical_layout
from needleguide.anatomy.phantom.cervical_vertebra import Degeneration
from needleguide.anatomy.phantom.landmarks_lumbar import refine
from needleguide.anatomy.phantom.model import PhantomParams
from needleguide.anatomy.phantom.painter import Stroke
from needleguide.anatomy.phantom.pelvis import sacrum_layout
from needleguide.anatomy.phantom.sdf import Box
from needleguide.anatomy.phantom.sdf_move import clipped_below, moved
from needleguide.anatomy.phantom.softtissue import muscle_scale, paraspinal_section
from needleguide.anatomy.phantom.spine import Level
from needleguide.anatomy.phantom.spine import layout as lumbar_layout
from needleguide.anatomy.phantom.thoracic_dims import (
    LUMBAR_RIB,
    RIBS,
    SpineVariants,
    draw_variants,
    thoracic_dims,
)
from needleguide.anatomy.phantom.thorax import chain_layout, spine_strokes
from needleguide.anatomy.phantom.thorax_cage import (
    Base,
    chest_rows,
    heart_and_airway,
    lung_strokes,
    rib_strokes,
    sternum_and_clavicles,
)
from needleguide.anatomy.phantom.variants import variant_strokes
from needleguide.anatomy.phantom.vertebra import LAB, Phases
from needleguide.anatomy.tissues import default_tissue_table

LUMBAR_PHYSICAL = ("T11", "T12", "L1", "L2", "L3", "L4", "L5")
_TOKEN = re.compile(r"\b(T1[12]|L[1-5])\b")


def truth_names(v: SpineVariants) -> dict[str, str]:
    """The lumbar phantom's vertebra names → their names counted from C1."""
    if v.lumbosacral != "six_lumbar":
        return {n: n for n in LUMBAR_PHYSICAL}
    return dict(zip(LUMBAR_PHYSICAL, ("T12", "L1", "L2", "L3", "L4", "L5", "L6"), strict=True))


def _rename(name: str, mapping: dict[str, str]) -> str:
    return _TOKEN.sub(lambda m: mapping.get(m.group(1), m.group(1)), name)


def _base(name: str, v: Vertebra, off: np.ndarray, tp: tuple[str, str], sp: str) -> Base:
    c = np.asarray(v.center_mm, float) + off
    R = np.column_stack([v.right, v.anterior, v.superior])
    ex = v.extra
    return Base(name, lambda x, y, z: R @ np.array([x, y, z], float) + c, v.body_width_mm,
                v.body_depth_mm, v.body_height_mm,
                {"right": np.asarray(ex[tp[0]], float) + off,
                 "left": np.asarray(ex[tp[1]], float) + off},
                np.asarray(ex[sp], float) + off)


def _moved_vertebra(v: Vertebra, off: np.ndarray, name: str | None = None) -> Vertebra:
    extra = {k: (np.asarray(x, float) + off).round(3).tolist()
             if isinstance(x, list) and len(x) == 3 else x for k, x in v.extra.items()}
    return Vertebra(name or v.name, np.asarray(v.center_mm, float) + off, v.superior,
                    v.anterior, v.body_height_mm, v.body_width_mm, v.body_depth_mm, extra)


def build(params: PhantomParams, variants: SpineVariants | None = None
          ) -> LayeredPhantomModel:
    """The whole-spine phantom for ``params`` (region 'spine'); ``variants`` overrides the
    seeded draw."""
    seed = int(params.seed)
    rng = np.random.default_rng([seed, 14])
    drawn = draw_variants(rng)
    var = variants or drawn
    deg = DEGENERATION[int(params.degeneration)]
    lum = lumbar.build(params.model_copy(update={"region": "lumbar"}))
    cer = cervical.build(params.model_copy(update={"region": "cervical"}))
    # the two layouts again, from the same streams as their builders
    r = np.random.default_rng(seed)
    dims, pdims, gscale = sample_dimensions(r)
    sp = lumbar_layout(dims, r, deg)
    pv = sacrum_layout(sp, pdims)
    r = np.random.default_rng(seed)
    opt = cervical.CervicalOptions()
    lordosis = float(np.clip(r.normal(opt.lordosis_mean_deg, opt.lordosis_sd_deg), 5, 45))
    size = float(np.clip(r.normal(1.0, opt.size_sd), 0.9, 1.1))
    clay = cervical_layout(r, lordosis, Degeneration(params.degeneration).disc_loss, size)
    t2c = clay.levels["T2"]

    names = [f"T{i}" for i in range(3, 11)] + (["T11"] if var.n_lumbar == 6 else [])
    tdims = thoracic_dims(rng, names, gscale)
    chain = chain_layout(sp.levels["T11"], t2c.center, t2c.V(0, 0, 1),
                         (t2c.W, t2c.D, t2c.H, t2c.canal_w, t2c.canal_d), tdims, rng,
                         deg["disc_loss"])
    off = chain.offset_mm
    mapping = truth_names(var)

    # --- body sections: lumbar rows below the chain, chest rows, neck rows above T1
    m = muscle_scale(params.bmi)
    z_t11 = float(sp.levels["T11"].center[2])
    fat = lum.body.at(z_t11)["t_post"]
    ph = Phases()
    t11 = sp.levels["T11"]
    bottom = Level(mapping["T11"], t11.dims, t11.pose, t11.tilt_deg)
    cand, cls, pts = spine_strokes(ph, chain, bottom, deg)
    bases: dict[str, Base] = {}
    for n in ("T1", "T2"):
        bases[n] = _base(n, cer.vertebrae[n], off, ("tp_tip.right", "tp_tip.left"),
                         "spinous_tip")
    for n, L in chain.levels.items():
        P = pts[n]
        bases[n] = Base(n, L.P, L.dims.body_width, L.dims.body_depth, L.dims.body_height,
                        {"right": P["tp_tip_right"], "left": P["tp_tip_left"]},
                        P["spinous_tip"])
    for n in LUMBAR_PHYSICAL:
        t = mapping[n]
        bases[t] = _base(t, lum.vertebrae[n], np.zeros(3),
                         ("transverse_tip_right", "transverse_tip_left"), "spinous_tip")
    chest = [bases[n] for n in ["T1", "T2", *names]]
    pm = {n: paraspinal_section(L, m) for n, L in chain.levels.items()}
    zc, tc = chest_rows(chest, m, 0.8 * fat, pm)
    lz, lt = lum.body.z_mm, lum.body.table
    keep = lz < z_t11 + 1.0
    ci = {c: i for i, c in enumerate(COLS)}
    nz, nt = cer.body.z_mm + off[2], cer.body.table.copy()
    for c in ("cy", "y_back"):
        nt[:, ci[c]] += off[1]
    z_c7 = float(cer.vertebrae["C7"].center_mm[2] + off[2])
    upper = nz > z_c7 - 1.0
    nt[np.argmin(np.abs(nz - z_c7)), ci["ax"]] *= 1.45  # base of the neck (trapezius)
    z = np.concatenate([lz[keep], zc, nz[upper]])
    tab = np.vstack([lt[keep], tc, nt[upper]])
    o = np.argsort(z)
    b0 = lum.body
    body = BodyLayers(z[o], tab[o], skin_mm=b0.skin_mm, skin_label=b0.skin_label,
                      fat_label=b0.fat_label, wall_label=b0.wall_label,
                      back_label=b0.back_label, core_label=b0.core_label,
                      paired_label=b0.paired_label)

    # --- chest: ribs, lungs, heart, airway, sternum, clavicles
    ribs = {n: (bases[n], RIBS[int(n[1:])]) for n in var.rib_bearing() if n.startswith("T")}
    if "L1" in var.rib_bearing():
        ribs["L1"] = (bases["L1"], LUMBAR_RIB)
    ph_chest = Phases()
    rib_lines = rib_strokes(ph_chest, ribs, gscale, body.at)
    dome = {"right": float(bases["T9"].center[2]) + 4.0,
            "left": float(bases["T9"].center[2]) - 10.0}
    lung_strokes(ph_chest, [bases[n] for n in [f"T{i}" for i in range(1, 12)]], ribs, gscale,
                 body.at, float(bases["T12"].center[2]) - 6.0, dome)
    t2_low = cer.vertebrae["T2"]
    trachea_top = np.asarray(t2_low.center_mm, float) + off + t2_low.anterior * 26.0 \
        - t2_low.superior * 12.0
    heart_and_airway(ph_chest, bases, body.at, trachea_top)
    chest_pts = sternum_and_clavicles(ph_chest, bases, body.at)

    # --- strokes: neck block label, chest and chain bone, lumbar, the rest, cervical
    t1z = float(bases["T1"].center[2])
    neck = Stroke(Box(_at(np.array([0.0, 0.0, 0.5 * (z_c7 + 400.0)])),
                      half_mm=(200.0, 400.0, 0.5 * (400.0 - z_c7))), LAB["neck_muscle"],
                  only_into=(LAB["muscle"],))
    lum_strokes = [s for s in lum.strokes if s.label != LAB["rib"]]
    z_cut = float(chain.levels["T3"].center[2]) - 4.0
    cer_strokes = []
    for st in cer.strokes:
        if st.label == LAB["rib"]:
            continue
        lo, hi = st.shape.bbox()
        if st.label == LAB["internal_air"] and abs(0.5 * (lo[0] + hi[0])) > 15.0:
            continue  # the cervical phantom's lung apices: the chest's lungs replace them
        c = clipped_below(moved(st, off), z_cut)
        if c is not None:
            cer_strokes.append(c)
    early = ("muscle", "organ", "bone")
    strokes = ([neck] + [s for k in early for s in ph_chest.by[k] + ph.by[k]] + lum_strokes
               + [s for k in Phases.ORDER if k not in early for s in ph_chest.by[k] + ph.by[k]]
               + cer_strokes + variant_strokes(var, sp, pv, dims))

    # --- landmarks, centerlines, vertebrae (names counted from C1)
    tissues = default_tissue_table()
    landmarks = {_rename(k, mapping): Landmark(_rename(k, mapping), v.position_mm, v.tissue,
                                                _rename(v.description, mapping))
                 for k, v in lum.landmarks.items()}
    landmarks.update({k: Landmark(k, np.asarray(v.position_mm, float) + off, v.tissue,
                                  v.description) for k, v in cer.landmarks.items()})
    landmarks.update(refine(cand, strokes, body, tissues))
    centerlines = {_rename(k, mapping): Centerline(_rename(k, mapping), c.kind, c.points_mm,
                                                   c.radii_mm, c.label, c.velocity_mm_s,
                                                   c.parent and _rename(c.parent, mapping))
                   for k, c in lum.centerlines.items()}
    centerlines.update({k: Centerline(k, c.kind, c.points_mm + off, c.radii_mm, c.label,
                                      c.velocity_mm_s, c.parent)
                        for k, c in cer.centerlines.items()})
    centerlines.update(cls)
    vertebrae: dict[str, Vertebra] = {n: _moved_vertebra(cer.vertebrae[n], off)
                                      for n in cer.vertebrae}
    for n, L in chain.levels.items():
        P = pts[n]
        extra = {k: np.round(np.asarray(P[a], float), 3).tolist() for k, a in (
            ("pedicle_right", "pedicle_right"), ("pedicle_left", "pedicle_left"),
            ("spinous_tip", "spinous_tip"), ("lamina_center", "lamina_center"),
            ("transverse_tip_right", "tp_tip_right"), ("transverse_tip_left", "tp_tip_left"))}
        vertebrae[n] = Vertebra(n, L.center, L.up, L.ant, L.dims.body_height,
                                L.dims.body_width, L.dims.body_depth, extra)
    for n in [*LUMBAR_PHYSICAL, "S1"]:
        t = mapping.get(n, n)
        vertebrae[t] = _moved_vertebra(lum.vertebrae[n], np.zeros(3), t)
    for n, pl in rib_lines.items():
        v = vertebrae[n.split(".")[0]]
        v.extra[f"rib_tip_{n.rsplit('.', 1)[1]}"] = np.round(pl[-1], 3).tolist()

    lo, hi = _bounds(body, float(lum.bounds_mm[0][2]), float(cer.bounds_mm[1][2] + off[2]))
    meta = {"origin": "centre of the lumbar phantom's L4-L5 disc", "global_scale": gscale,
            "variants": {"lumbosacral": var.lumbosacral, "ribs": var.ribs,
                         "label": var.label(), "transitional": var.transitional,
                         "drawn": variants is None, "rib_bearing": list(var.rib_bearing()),
                         "n_lumbar": var.n_lumbar},
            "cervical_offset_mm": np.round(off, 3).tolist(),
            "kyphosis_T2_T11_deg": round(float(chain.t2.tilt_deg - sp.levels["T11"].tilt_deg),
                                         2),
            "lordosis_L1_S1_deg": lum.meta.get("lordosis_L1_S1_deg"),
            "cervical_lordosis_deg": cer.meta.get("lordosis_deg"),
            "jugular_notch_mm": np.round(chest_pts["jugular_notch"], 2).tolist(),
            "t1_z_mm": round(t1z, 2)}
    return LayeredPhantomModel(params=params, strokes=strokes, bounds_mm=(lo, hi),
                               landmarks=landmarks, centerlines=centerlines,
                               vertebrae=vertebrae, meta=meta, tissues=tissues, body=body)


def _at(c: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = c
    return T


def _bounds(body: BodyLayers, z_lo: float, z_hi: float) -> tuple[np.ndarray, np.ndarray]:
    ext = []
    for z in np.linspace(z_lo, z_hi, 120):
        r = body.at(z)
        ext.append((r["ax"] + r["t_lat"] + body.skin_mm,
                    r["cy"] - r["ay_post"] - r["t_post"] - body.skin_mm,
                    r["cy"] + r["ay_ant"] + r["t_ant"] + body.skin_mm))
    e = np.array(ext)
    m = 6.0
    return (np.array([-e[:, 0].max() - m, e[:, 1].min() - m, z_lo]),
            np.array([e[:, 0].max() + m, e[:, 2].max() + m, z_hi]))


__all__ = ["build", "truth_names", "SpineVariants"]
