"""Cervical region of the parametric phantom: occiput to T2 (see docs/anatomy_cervical.md).

``build(params)`` returns a :class:`PhantomModel`: ordered SDF strokes (soft tissue first,
then bone, joints, canal, nerves and vessels), landmarks for cervical procedures,
vessel and nerve centerlines and the vertebral poses C1–T2.

Coordinate origin: the centre of the C5–C6 disc; RAS mm (x right, y anterior, z superior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide.anatomy.patient import Landmark, Vertebra
from needleguide.anatomy.phantom.body import LayeredPhantomModel
from needleguide.anatomy.phantom.cervical_geom import NAMES, SUBAXIAL, layout, tube
from needleguide.anatomy.phantom.cervical_neural import (
    ROOTS,
    canal_strokes,
    foramen_target,
    nerve_strokes,
    root_strokes,
)
from needleguide.anatomy.phantom.cervical_soft import (
    NeckSections,
    body_layers,
    fat_thickness_mm,
    muscle_strokes,
    neck_circumference_mm,
    viscera_strokes,
)
from needleguide.anatomy.phantom.cervical_upper import atlas, c2_extras, occiput
from needleguide.anatomy.phantom.cervical_vertebra import (
    BONE,
    LAB,
    SIDES,
    Degeneration,
    disc_strokes,
    facet_joint_strokes,
    first_rib,
    vertebra_strokes,
)
from needleguide.anatomy.phantom.cervical_vessels import vessel_strokes
from needleguide.anatomy.phantom.model import PhantomModel, PhantomParams
from needleguide.anatomy.phantom.painter import Stroke
from needleguide.anatomy.phantom.sdf import Box, HalfSpace, Intersect, Union


@dataclass(frozen=True)
class CervicalOptions:
    """Cervical parameters no source fixes (*assumptions*, defaults documented).

    lordosis_mean_deg / lordosis_sd_deg: C2–C7 Cobb angle drawn from N(mean, sd), clipped
    to [5, 45]; size_sd: SD of the global size factor of the bones.
    """

    lordosis_mean_deg: float = 25.0
    lordosis_sd_deg: float = 6.0
    size_sd: float = 0.04


def build(params: PhantomParams, options: CervicalOptions | None = None) -> PhantomModel:
    """The cervical phantom (occiput–T2) for ``params`` (BMI, degeneration, seed)."""
    opt = options or CervicalOptions()
    rng = np.random.default_rng(params.seed)
    deg = Degeneration(params.degeneration)
    lordosis = float(np.clip(rng.normal(opt.lordosis_mean_deg, opt.lordosis_sd_deg), 5, 45))
    size = float(np.clip(rng.normal(1.0, opt.size_sd), 0.9, 1.1))
    lay = layout(rng, lordosis, deg.disc_loss, size)
    ns = NeckSections(lay, params.bmi)

    bone, joints, capsules, discs, ligs = [], [], [], [], []
    for name in SUBAXIAL:
        ph = vertebra_strokes(lay, name, deg)
        bone += ph["bone"]
    for up, lo in zip(SUBAXIAL[:-1], SUBAXIAL[1:], strict=True):
        caps, spaces, _ = facet_joint_strokes(lay, up, lo, deg)
        capsules += caps
        joints += spaces
        discs += disc_strokes(lay, up, lo, deg)
        ligs += _interspinous(lay, up, lo)
    ligs.append(_nuchal_ligament(lay))
    c2b, c12j, c12c = c2_extras(lay)
    at, _ = atlas(lay)
    oc, ocj, occ_c = occiput(lay)
    bone += c2b + at + oc
    joints += c12j + ocj
    for s in SIDES.values():
        bone.append(Stroke(first_rib(lay, s), LAB("rib")))
    foramen, roots, root_cls = root_strokes(lay)
    nerves, nerve_cls, nerve_lms = nerve_strokes(lay, deg)
    vis, vis_info = viscera_strokes(lay)
    vessels, vessel_cls = vessel_strokes(lay, rng)

    # canal, foramina, discs and roots go before the bones, which overwrite them where
    # they overlap (cheaper than 'never_into' masks over their large bounding boxes)
    strokes: list[Stroke] = (muscle_strokes(ns) + vis + ligs + capsules
                             + foramen + canal_strokes(lay, deg) + discs + roots + bone
                             + joints + nerves + vessels)

    z_top = float(ns.rows[-1, 0])
    strokes = [_clip_top(st, z_top) for st in strokes]
    landmarks = _landmarks(lay, nerve_lms, c12c, occ_c)
    boxes = boxed(strokes)
    for name, lm in landmarks.items():
        if ".foramen." in name:
            p = settle(boxes, lm.position_mm, LAB(lm.tissue))
            landmarks[name] = Landmark(name, p.round(3), lm.tissue, lm.description)
    lo, hi = ns.column(ns.t + 1.6, -0.3 * ns.t).bbox()
    lo = np.floor(lo - 2.0)
    hi = np.ceil(hi + 2.0)
    t2 = lay.levels["T2"]  # the region ends just below T2 (the spine is not modelled lower)
    lo[2] = np.floor(min(t2.P(0, y, -t2.H / 2 - 6.0)[2] for y in (-40.0, 0.0, 40.0)))
    meta = {"region_levels": "occiput-T2", "origin": "centre of the C5-C6 disc",
            "lordosis_deg": round(lordosis, 2), "size_scale": round(size, 4),
            "fat_thickness_mm": round(ns.t, 2),
            "neck_circumference_mm": round(neck_circumference_mm(params.bmi), 1),
            "bmi_fat_thickness_mm": round(fat_thickness_mm(params.bmi), 2)}
    return LayeredPhantomModel(params=params, strokes=strokes, bounds_mm=(lo, hi),
                               landmarks=landmarks,
                               centerlines={**vessel_cls, **root_cls, **nerve_cls},
                               vertebrae=_vertebrae(lay), meta=meta, body=body_layers(ns))


def _clip_top(st: Stroke, z_top: float) -> Stroke:
    """The stroke cut at the top of the modelled region (skull and brain reach above it)."""
    if st.shape.bbox()[1][2] <= z_top:
        return st
    cut = HalfSpace((0.0, 0.0, z_top), (0.0, 0.0, 1.0))
    return Stroke(Intersect([st.shape, cut]), st.label, st.only_into, st.never_into)


def _interspinous(lay, up: str, lo: str) -> list[Stroke]:
    """Interspinous + supraspinous ligament: a 3 mm midline plate filling the space between
    two spinous processes (the bones, painted later, keep their own voxels)."""
    U, L = lay.levels[up], lay.levels[lo]
    roots = [lv.P(0.0, -lv.D / 2 - lv.canal_d - 2.5, -1.5) for lv in (U, L)]
    tips = [np.array(lv.info["spinous_tip"]) for lv in (U, L)]
    a, b = (roots[0] + roots[1]) / 2, (tips[0] + tips[1]) / 2
    x = b - a
    length = float(np.linalg.norm(x))
    x /= length
    y = (roots[0] + tips[0]) / 2 - (roots[1] + tips[1]) / 2
    y -= x * (x @ y)
    h = float(np.linalg.norm(y))
    T = np.eye(4)
    T[:3, 0], T[:3, 1] = x, y / h
    T[:3, 2], T[:3, 3] = np.cross(x, y / h), (a + b) / 2
    return [Stroke(Box(T, half_mm=(length / 2 + 1.0, h / 2, 1.5), round_mm=0.5),
                   LAB("interspinous_ligament"), only_into=(LAB("neck_muscle"),
                                                            LAB("soft_tissue")))]


def _nuchal_ligament(lay) -> Stroke:
    """Ligamentum nuchae: midline septum from the C7 spinous tip to the external occipital
    protuberance, passing behind the C2–C6 spinous tips."""
    pts = [np.array(lay.levels["C7"].info["spinous_tip"])]
    for n in ("C6", "C5", "C4", "C3", "C2"):
        lv = lay.levels[n]
        pts.append(np.array(lv.info["spinous_tip"]) + lv.V(0.0, -6.0, 0.0))
    pts.append(lay.levels["C1"].P(0.0, -60.0, 38.0))
    return Stroke(tube(np.array(pts), np.full(len(pts), 1.4)), LAB("interspinous_ligament"),
                  only_into=(LAB("neck_muscle"), LAB("soft_tissue")))


def boxed(strokes: list[Stroke]) -> list[tuple[Stroke, np.ndarray, np.ndarray]]:
    """Strokes split into single shapes, each with its bounding box (RAS min, max)."""
    out = []
    for st in strokes:
        parts = st.shape.shapes if isinstance(st.shape, Union) and st.shape.smooth_mm == 0 \
            else [st.shape]
        for shp in parts:
            a, b = shp.bbox()
            out.append((Stroke(shp, st.label, st.only_into, st.never_into), a, b))
    return out


def settle(boxes: list[tuple[Stroke, np.ndarray, np.ndarray]], p_mm: np.ndarray, label: int,
           reach_mm: float = 2.0,
           step_mm: float = 0.5) -> np.ndarray:
    """The point of a small grid around ``p_mm`` (±``reach_mm``) deepest inside ``label``
    (largest distance to any other label; ties → nearest to ``p_mm``). Keeps landmarks
    inside thin or squeezed structures (degenerate foramina) robustly."""
    from scipy import ndimage

    from needleguide.anatomy.phantom.painter import render

    n = int(round(2 * reach_mm / step_mm)) + 1
    aff = np.diag([step_mm, step_mm, step_mm, 1.0])
    aff[:3, 3] = np.asarray(p_mm, float) - reach_mm
    lo, hi = aff[:3, 3] - 1.0, aff[:3, 3] + 2 * reach_mm + 1.0
    near = [st for st, a, b in boxes if np.all(a <= hi) and np.all(b >= lo)]
    lab = render(near, (n, n, n), aff) == label
    if not lab.any():
        return np.asarray(p_mm, float)
    depth = ndimage.distance_transform_edt(np.pad(lab, 1))[1:-1, 1:-1, 1:-1] * step_mm
    idx = np.stack(np.meshgrid(*(np.arange(n),) * 3, indexing="ij"), -1).reshape(-1, 3)
    off = np.linalg.norm(idx * step_mm - reach_mm, axis=1)
    score = np.minimum(depth.reshape(-1), 1.5) - 0.05 * off
    best = idx[int(np.argmax(score))]
    return aff[:3, :3] @ best + aff[:3, 3]


def _landmarks(lay, nerve_lms, c12c, occ_c) -> dict[str, Landmark]:
    lv = lay.levels
    out: dict[str, Landmark] = {}

    def add(name, p, tissue, desc):
        out[name] = Landmark(name, np.asarray(p, float).round(3), tissue, desc)

    for side, s in SIDES.items():
        add(f"C6.anterior_tubercle.{side}", lv["C6"].info[f"anterior_tubercle.{side}"],
            "anterior_tubercle", "C6 anterior (Chassaignac) tubercle: US level landmark")
        for up, lo in zip(SUBAXIAL[:-1], SUBAXIAL[1:], strict=True):
            from needleguide.anatomy.phantom.cervical_vertebra import joint_plane

            c, _ = joint_plane(lay, up, lo, s)
            add(f"{up}-{lo}.facet.{side}", c, "facet_joint_space",
                f"centre of the {up}-{lo} zygapophysial joint space")
        add(f"C1-C2.facet.{side}", c12c[side], "facet_joint_space",
            "lateral atlanto-axial joint space")
        add(f"C0-C1.facet.{side}", occ_c[side], "facet_joint_space",
            "atlanto-occipital joint space")
        add(f"third_occipital_nerve.{side}", nerve_lms[f"third_occipital_nerve.{side}"],
            "third_occipital_nerve", "third occipital nerve over the dorsolateral C2-C3 facet")
        for n in ("C3", "C4", "C5", "C6", "C7"):
            where = "apex of the superior articular process" if n == "C7" else \
                "waist (centroid) of the articular pillar"
            add(f"{n}.medial_branch.{side}", nerve_lms[f"{n}.medial_branch.{side}"],
                "medial_branch", f"{n} medial branch on the lateral {where}")
        for root, (up, lo) in ROOTS.items():
            add(f"{up}-{lo}.foramen.{side}", foramen_target(lay, root, s), "foramen",
                f"foraminal fat above the exiting {root} root (transforaminal target)")
        for n in ("C6", "C7"):
            L = lv[n]
            where = "medial to the anterior tubercle" if n == "C6" else \
                "medial to the vertebral artery (C7 approach)"
            add(f"{n}.stellate.{side}", L.P(s * 11.0, L.D / 2 + 1.2 + 1.6, -1.0), "longus_colli",
                f"stellate ganglion block target at {n}: anterior surface of longus colli under "
                f"the prevertebral fascia, {where}")
    for n in ("C2", "C3", "C4", "C5", "C6", "C7", "T1"):
        L = lv[n]
        add(f"{n}.spinous_tip", L.info["spinous_tip"], "spinous_process",
            f"tip of the {n} spinous process")
    return out


def _vertebrae(lay) -> dict[str, Vertebra]:
    out = {}
    for n in NAMES:
        L = lay.levels[n]
        extra = {k: v for k, v in L.info.items() if not k.startswith("_")}
        out[n] = Vertebra(n, L.center, L.V(0, 0, 1), L.V(0, 1, 0), float(L.H), float(L.W),
                          float(L.D), extra)
    return out


__all__ = ["build", "CervicalOptions", "BONE"]
