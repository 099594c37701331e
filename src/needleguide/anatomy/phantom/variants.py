"""Strokes of the lumbosacral transitional variants of the whole-spine phantom
(*assumptions* after the Castellvi description of transitional vertebrae).

- Sacralised L5 (Castellvi II–III, both sides): each transverse process of the last
  lumbar vertebra continues as a broad bony mass down to the sacral ala, and the L5–S1
  disc is bony except a thin rudimentary central disc (2.5 mm).
- Lumbarised S1: a 6 mm disc separates the first sacral segment (body and alae) from the
  second, so that S1 looks like a sixth lumbar vertebra with broad transverse processes.
"""

from __future__ import annotations

from needleguide.anatomy.phantom.anthropometry import VertebraDims
from needleguide.anatomy.phantom.painter import Stroke
from needleguide.anatomy.phantom.pelvis import Pelvis, _seg
from needleguide.anatomy.phantom.sdf import Box, Capsule, EllipticCylinder, Subtract
from needleguide.anatomy.phantom.spine import SpineLayout, frame
from needleguide.anatomy.phantom.thoracic_dims import SpineVariants
from needleguide.anatomy.phantom.vertebra import LAB, disc_shape, geometry

_SOFT_PARTS = ("foramen", "nerve_root", "drg", "medial_branch", "segmental_artery",
               "epidural_fat", "dura", "csf", "spinal_cord", "epidural_venous_plexus",
               "sacral_foramen", "facet_joint_space", "facet_capsule")


def variant_strokes(var: SpineVariants, sp: SpineLayout, pv: Pelvis,
                    dims: dict[str, VertebraDims]) -> list[Stroke]:
    """The strokes that turn the lumbar phantom's lumbosacral junction into ``var``'s."""
    out: list[Stroke] = []
    keep = tuple(LAB[n] for n in _SOFT_PARTS)
    if var.lumbosacral == "sacralised_L5":
        L5 = sp.levels["L5"]
        g = geometry(L5)
        for s in (1, -1):
            top = L5.P(s * (g["x_tp_root"] + 9.0), g["y_tp"] + 1.0, g["z_tp"] - 2.0)
            ala = _seg(pv, 0, s * 0.62 * pv.widths[0], -pv.thick[0] / 2 + 20.0,
                       pv.seg_half_h - 4.0)
            out.append(Stroke(Capsule(top, ala, 8.5, 10.5), LAB["transverse_process"],
                              never_into=keep))
        disc = disc_shape(L5, pv.s1)
        mid = 0.5 * ((L5.center - L5.up * L5.dims.body_height / 2) + sp.s1_endplate)
        slab = Box(frame(mid, L5.up + pv.s1.up, L5.ant + pv.s1.ant),
                   half_mm=(40.0, 40.0, 1.25))
        out.append(Stroke(Subtract(disc, slab), LAB["sacrum"], only_into=(LAB["disc"],)))
    elif var.lumbosacral == "lumbarised_S1":
        T0, T1 = pv.segments[0], pv.segments[1]
        c = T0[:3, 3] - T0[:3, 2] * pv.seg_half_h
        up = T0[:3, 2] + T1[:3, 2]
        ant = T0[:3, 1] + T1[:3, 1]
        out.append(Stroke(EllipticCylinder(frame(c, up, ant),
                                           radii=(pv.widths[0] + 8.0, pv.thick[0] / 2 + 8.0),
                                           half_height_mm=3.0),
                          LAB["disc"], only_into=(LAB["sacrum"],)))
    return out


__all__ = ["variant_strokes"]
