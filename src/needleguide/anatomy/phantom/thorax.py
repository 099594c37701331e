"""The thoracic spine between the cervical phantom's T2 and the lumbar phantom's T11.

``chain_layout`` stacks the thoracic vertebrae (T3–T10, or T3–T11 when the spine has six
lumbar vertebrae) upwards from the lumbar phantom's top vertebra, their end-plate tilt
turning linearly from its tilt to the cervical T2's (the thoracic kyphosis), and returns
where the cervical phantom's T2 must sit (the cervical model is moved there whole).
``spine_strokes`` paints them with the lumbar vertebra builders (body, pedicles, pillars,
laminae, transverse and spinous processes; discs, facet joints, foramina, ligaments,
roots, medial branches) and the canal with the cord, and lists the landmarks of the
thoracic procedures: ``U-B.facet.side`` (facet joint space), ``N.medial_branch.side`` (the
medial branch over the superolateral corner of the transverse process below),
``U-B.foramen.side`` (transforaminal target), ``N.pedicle.side``, ``N.spinous_tip``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from needleguide.anatomy.patient import Centerline
from needleguide.anatomy.phantom import neuraxis
from needleguide.anatomy.phantom.anthropometry import VertebraDims
from needleguide.anatomy.phantom.sdf import Union
from needleguide.anatomy.phantom.spine import Level, frame, tilt_axes
from needleguide.anatomy.phantom.thoracic_dims import THORACIC
from needleguide.anatomy.phantom.vertebra import (
    Phases,
    canal_roof_fill,
    canal_segment,
    disc_shape,
    facet_strokes,
    vertebra_strokes,
)

SIDES = (("right", 1), ("left", -1))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def tilt_of(up: np.ndarray) -> float:
    """Anterior tilt (deg) of an end-plate normal from vertical, in the sagittal plane."""
    return float(np.degrees(np.arctan2(up[1], up[2])))


@dataclass
class Chain:
    """The thoracic chain: its levels (top to bottom), the lumbar-style stand-in of the
    cervical T2 (for the T2–T3 joints) and the translation that puts the cervical model's
    T2 on top of the chain."""

    levels: dict[str, Level]
    t2: Level
    offset_mm: np.ndarray


def chain_layout(bottom: Level, t2_center: np.ndarray, t2_up: np.ndarray,
                 t2_size: tuple[float, float, float, float, float],
                 dims: dict[str, VertebraDims], rng: np.random.Generator,
                 disc_loss: float) -> Chain:
    """Stack ``dims`` (names top to bottom) on ``bottom``; ``t2_*``: the cervical T2's centre
    and superior axis in the cervical model's frame and its (W, D, H, canal W, canal D)."""
    names = list(dims)
    t2_tilt = tilt_of(np.asarray(t2_up, float))
    n = len(names)
    tilt = {nm: t2_tilt + (bottom.tilt_deg - t2_tilt) * (i + 1) / (n + 1)
            + float(rng.normal(0, 1.0)) for i, nm in enumerate(names)}
    levels: dict[str, Level] = {}
    cur = bottom
    for nm in reversed(names):
        d = dims[nm]
        u, a = tilt_axes(tilt[nm])
        ud = _unit(cur.up + u)
        h = d.disc_below * (1.0 - 0.2 * disc_loss)
        centre = cur.center + cur.up * cur.dims.body_height / 2 + ud * h + u * d.body_height / 2
        levels[nm] = Level(nm, d, frame(centre, u, a), tilt[nm])
        cur = levels[nm]
    levels = {nm: levels[nm] for nm in names}
    W, D, H, cw, cd = t2_size
    t2d = replace(THORACIC["T2"], body_width=W, body_depth=D, body_height=H, canal_width=cw,
                  canal_depth=cd)
    u2 = _unit(np.asarray(t2_up, float))
    top = levels[names[0]]
    ud = _unit(top.up + u2)
    c2 = top.center + top.up * top.dims.body_height / 2 + ud * t2d.disc_below + u2 * H / 2
    a2 = _unit(np.array([0.0, 1.0, 0.0]) - u2 * u2[1])
    t2 = Level("T2", t2d, frame(c2, u2, a2), t2_tilt)
    return Chain(levels, t2, c2 - np.asarray(t2_center, float))


def spine_strokes(ph: Phases, chain: Chain, bottom: Level, deg: dict
                  ) -> tuple[list[tuple[str, np.ndarray, str, str]], dict[str, Centerline],
                             dict[str, dict]]:
    """Bone, joints, foramina, ligaments, canal and nerves of the chain and of its junctions
    with T2 above and ``bottom`` below. Returns landmark candidates (name, RAS, tissue,
    description), centerlines and each chain vertebra's named points."""
    cand: list[tuple[str, np.ndarray, str, str]] = []
    cls: dict[str, Centerline] = {}
    pts: dict[str, dict] = {}
    lv = chain.levels
    for nm, L in lv.items():
        pts[nm] = vertebra_strokes(ph, L, deg)
        cand.append((f"{nm}.spinous_tip", pts[nm]["spinous_tip"], "spinous_process",
                     f"{nm} spinous process tip"))
        for side, _s in SIDES:
            cand.append((f"{nm}.pedicle.{side}", pts[nm][f"pedicle_{side}"], "pedicle",
                         f"{nm} pedicle centre, {side}"))
    seq = [chain.t2, *lv.values(), bottom]
    for U, B in zip(seq[:-1], seq[1:], strict=True):
        key = f"{U.name}-{B.name}"
        ph.add("disc", disc_shape(U, B), "disc", never_into=("vertebral_body",))
        for side, s in SIDES:
            fp = facet_strokes(ph, U, B, s, U.dims.facet_angle_below, deg)
            cand.append((f"{key}.facet.{side}", fp["facet"], "facet_joint_space",
                         f"{key} thoracic zygapophysial (facet) joint space, {side}"))
        fr = neuraxis.foramen_strokes(ph, U, B)
        neuraxis.posterior_ligaments(ph, U, B, deg["flavum_mm"])
        for side, s in SIDES:
            cand.append((f"{key}.foramen.{side}", fr[side]["target"], "foramen",
                         f"{key} intervertebral foramen, {side}: under the {U.name} pedicle "
                         "(thoracic transforaminal target)"))
            cl, _drg = neuraxis.root_and_drg(ph, U, B, fr[side], s, side)
            cls[cl.name] = cl
            mb, tgt = neuraxis.medial_branch(ph, f"{U.name}.medial_branch.{side}", B, s,
                                             side, facet_growth=deg["facet_growth"])
            cls[mb.name] = mb
            cand.append((mb.name, tgt, "medial_branch",
                         f"{U.name} medial branch over the superolateral corner of the "
                         f"{B.name} transverse process, {side}"))
    canal_strokes(ph, [chain.t2, *lv.values()])
    return cand, cls, pts


def canal_strokes(ph: Phases, levels: list[Level]) -> None:
    """Epidural fat, dura, CSF and the spinal cord through the thoracic levels."""
    epi, roof, dura, csf, cord = [], [], [], [], []
    for L in levels:
        d = L.dims
        z_lo = -d.body_height / 2 - d.disc_below - 1.0
        z_hi = d.body_height / 2 + 2.0
        epi.append(canal_segment(L, z_lo, z_hi))
        roof.append(canal_roof_fill(L, z_lo, z_hi))
        dura.append(canal_segment(L, z_lo - 2.5, z_hi + 2.5, dy=1.0, shrink_x=2.3,
                                  shrink_y=2.1))
        csf.append(canal_segment(L, z_lo, z_hi, dy=1.0, shrink_x=3.6, shrink_y=3.4))
        cord.append(canal_segment(L, z_lo - 1.0, z_hi + 1.0, dy=1.5,
                                  shrink_x=d.canal_width / 2 - 4.5,
                                  shrink_y=d.canal_depth / 2 - 4.0))
    ph.add("canal", Union(epi), "epidural_fat")
    ph.add("canal", Union(roof), "epidural_fat", never_into=("ligamentum_flavum",
                                                             "vertebral_body", "pedicle",
                                                             "lamina", "spinous_process"))
    ph.add("thecal", Union(dura), "dura")
    ph.add("thecal", Union(csf), "csf")
    ph.add("thecal", Union(cord), "spinal_cord")


__all__ = ["Chain", "chain_layout", "spine_strokes", "canal_strokes", "tilt_of"]
