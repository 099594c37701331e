"""Canal contents and nerves: foramina, ligamentum flavum, interspinous ligament, epidural
fat, dura, CSF, cord / cauda equina, nerve roots with their ganglia, medial branches.

Nerve naming: ``L4.nerve_root.right`` leaves the thecal sac at L4, passes under the L4
pedicle and exits through the L4–L5 foramen. ``L4.medial_branch.right`` (from the L4 dorsal
ramus) crosses the junction of the L5 superior articular and transverse processes; the L5
dorsal ramus (``L5.medial_branch``) crosses the sacral ala at the base of the S1 SAP.
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.patient import Centerline
from needleguide.anatomy.phantom.pelvis import Pelvis, _seg
from needleguide.anatomy.phantom.sdf import Box, Capsule, Ellipsoid, Tube, Union
from needleguide.anatomy.phantom.spine import Level, frame
from needleguide.anatomy.phantom.vertebra import (
    BONE,
    LAB,
    LAMINA_TILT,
    Phases,
    canal_roof_fill,
    canal_segment,
    geometry,
    joint_frame,
    lamina_line,
)

SIDES = ((1, "right"), (-1, "left"))


def _avg_frame(U: Level, B: Level, origin) -> np.ndarray:
    return frame(origin, U.up + B.up, U.ant + B.ant)


def foramen_points(U: Level, B: Level, s: int) -> dict[str, np.ndarray]:
    """Key points of the U–B foramen on side s (patient RAS)."""
    du = U.dims
    gu = geometry(U)
    x_ped = du.canal_width / 2 + du.pedicle_width / 2
    ped_bottom = U.P(s * x_ped, gu["yc"] + 1.0, gu["zp"] - du.pedicle_height / 2)
    gb = geometry(B)
    ped_top_b = B.P(s * (B.dims.canal_width / 2 + B.dims.pedicle_width / 2), gb["yc"] + 1.0,
                    gb["zp"] + B.dims.pedicle_height / 2)
    centre = 0.5 * (ped_bottom + ped_top_b)
    down = ped_top_b - ped_bottom
    height = float(np.linalg.norm(down))
    down /= height
    ant = 0.5 * (U.ant + B.ant)
    lat = s * 0.5 * (U.right + B.right)
    return {
        "ped_bottom": ped_bottom, "centre": centre, "height": height, "down": down,
        "ant": ant, "lat": lat,
        # safe triangle: just under the pedicle, lateral half, posterior-superior quadrant
        "target": ped_bottom + down * 3.5 + lat * (du.pedicle_width / 2 - 1.0) - ant * 1.5,
        "drg": ped_bottom + down * (0.45 * height) + ant * 1.5,
    }


def foramen_strokes(ph: Phases, U: Level, B: Level) -> dict:
    pts = {}
    for s, side in SIDES:
        fp = foramen_points(U, B, s)
        du = U.dims
        c = fp["centre"] + fp["lat"] * 1.0
        box = Ellipsoid(_avg_frame(U, B, c), radii=(du.pedicle_width / 2 + 3.5,
                                                    du.canal_depth / 2 + 1.5,
                                                    fp["height"] / 2 + 3.0))
        ph.add("foramen", box, "foramen", never_into=(*BONE, LAB["disc"]))
        pts[side] = fp
    return pts


def posterior_ligaments(ph: Phases, U: Level, B: Level, flavum_mm: float) -> dict:
    """Ligamentum flavum across the interlaminar window and the interspinous ligament."""
    du = U.dims
    gu = geometry(U)
    gb = geometry(B)
    # ligamentum flavum: one plate per side along the laminar roof, from the lower edge of
    # U's laminae to the upper edge of B's, in front of the laminae (never into bone)
    for s in (1, -1):
        ends = []
        for lv, g, zsign in ((U, gu, -1.0), (B, gb, 1.0)):
            p0, p1, t, n_in = lamina_line(lv, s)
            z = g["lam_zc"] + zsign * (g["lam_h"] - 4.0)
            off = n_in * (g["lam_t"] + flavum_mm / 2 - 0.5)
            y_shift = LAMINA_TILT * (z - g["lam_zc"])  # the laminae's top is anterior
            ends.append((lv.P(*(p0 + off + np.array([0, y_shift, z]))),
                         lv.P(*(p1 + off + np.array([0, y_shift, z]))), lv.V(*n_in)))
        (a0, a1, na), (b0, b1, nb) = ends
        c = 0.25 * (a0 + a1 + b0 + b1)
        vert = 0.5 * (a0 + a1) - 0.5 * (b0 + b1)
        along = (a1 - a0) + (b1 - b0)
        nrm = na + nb
        nrm -= vert * (nrm @ vert) / (vert @ vert)
        fr = frame(c, vert, nrm)
        lf = Box(fr, half_mm=(0.5 * float(np.linalg.norm(along)) / 2 + 2.5, flavum_mm / 2,
                              float(np.linalg.norm(vert)) / 2 + 3.0), round_mm=1.0)
        ph.add("ligament", lf, "ligamentum_flavum", never_into=BONE)
    # interspinous + supraspinous ligament
    a = U.P(0, gu["yp"] - 10.0, gu["z_sp"])
    b = B.P(0, gb["yp"] - 10.0, gb["z_sp"])
    ta = U.P(0, gu["y_tip"] - 1.0, gu["z_sp"] - 6.0)
    tb = B.P(0, gb["y_tip"] - 1.0, gb["z_sp"] - 6.0)
    mid = (a + b + ta + tb) / 4
    depth = float(np.linalg.norm(0.5 * (a + b) - 0.5 * (ta + tb)))
    isl = Box(frame(mid, U.up + B.up, U.ant + B.ant),
              half_mm=(3.0, depth / 2 + 3.0, float(np.linalg.norm(a - b)) / 2), round_mm=1.5)
    ph.add("ligament", isl, "interspinous_ligament", never_into=BONE)
    # interlaminar epidural target: midline, in the posterior epidural fat
    post_sac = 0.5 * (U.P(0, U.canal_y - U.dims.canal_depth / 2 - 1.5, -du.body_height / 2)
                      + B.P(0, B.canal_y - B.dims.canal_depth / 2 - 1.5,
                            B.dims.body_height / 2))
    return {"interlaminar": post_sac, "isl": mid}


def canal_strokes(ph: Phases, levels: list[Level], pv: Pelvis, conus_level: str = "L1"
                  ) -> dict:
    """Epidural fat (whole canal), dura + CSF (to S2), cord to the conus, cauda equina."""
    epi, roof, dura, csf, cord = [], [], [], [], []
    names = [lv.name for lv in levels]
    for i, lv in enumerate(levels):
        d = lv.dims
        z_lo = -d.body_height / 2 - d.disc_below - 1.0
        z_hi = d.body_height / 2 + 2.0
        epi.append(canal_segment(lv, z_lo, z_hi))
        roof.append(canal_roof_fill(lv, z_lo, z_hi))
        # dura 1.3 mm thick (real ~0.3–0.5 mm; thick enough to seal the sac at 1 mm voxels);
        # CSF stays inside each level's dural segment (no leaks at the bends)
        dura.append(canal_segment(lv, z_lo - 2.5, z_hi + 2.5, dy=1.0, shrink_x=2.3,
                                  shrink_y=2.1))
        csf.append(canal_segment(lv, z_lo, z_hi, dy=1.0, shrink_x=3.6, shrink_y=3.4))
        ci = names.index(conus_level)
        if i < ci:
            cord.append(canal_segment(lv, z_lo, z_hi, dy=1.5, shrink_x=d.canal_width / 2 - 5,
                                      shrink_y=d.canal_depth / 2 - 4.0))
        elif i == ci:
            tip = lv.P(0, lv.canal_y + 1.5, -d.body_height / 2 - 2.0)
            top = lv.P(0, lv.canal_y + 1.5, d.body_height / 2 + 2.0)
            cord.append(Capsule(top, tip, 4.5, 1.5))
        else:  # cauda equina: two bundles of roots, dorsolateral in the sac
            for sx in (1, -1):
                cord.append(canal_segment(lv, z_lo, z_hi, dx=sx * 3.2, dy=-1.2,
                                          shrink_x=d.canal_width / 2 - 2.6,
                                          shrink_y=d.canal_depth / 2 - 2.2))
    # the sac continues into the sacrum and ends at S2
    s_top = _seg(pv, 0, 0, -pv.thick[0] + 30.0, pv.seg_half_h)
    s_end = _seg(pv, 1, 0, -pv.thick[1] + 27.5, 0.0)
    dura.append(Capsule(s_top, s_end, 7.5, 3.5))
    csf.append(Capsule(s_top, s_end, 6.2, 2.2))
    ph.add("canal", Union(epi), "epidural_fat")
    ph.add("canal", Union(roof), "epidural_fat", never_into=(*BONE, LAB["ligamentum_flavum"]))
    ph.add("thecal", Union(dura), "dura")
    ph.add("thecal", Union(csf), "csf")
    ph.add("thecal", Union(cord), "spinal_cord")
    return {}


def root_and_drg(ph: Phases, U: Level, B: Level, fp: dict, s: int, side: str
                 ) -> tuple[Centerline, np.ndarray]:
    """Nerve root of U (side s) from the sac through the U–B foramen, with its DRG."""
    d = U.dims
    start = U.P(s * (d.canal_width / 2 - 5.0), U.canal_y + 1.0, 0.0)
    recess = U.P(s * (d.canal_width / 2 - 2.0), U.canal_y + 2.5, -d.body_height / 2 + 4.0)
    drg = fp["drg"]
    out1 = drg + fp["lat"] * 12.0 + fp["down"] * 6.0 + fp["ant"] * 6.0
    out2 = out1 + fp["lat"] * 14.0 + fp["down"] * 18.0 + fp["ant"] * 14.0
    pts = np.array([start, recess, drg, out1, out2])
    radii = np.array([1.4, 1.6, 2.0, 2.2, 2.4])
    ph.add("neural", Tube(pts, radii), "nerve_root", never_into=BONE)
    ph.add("neural", Ellipsoid(frame(drg, out1 - recess, fp["ant"]), radii=(3.0, 2.8, 5.0)),
           "drg", never_into=BONE)
    cl = Centerline(f"{U.name}.nerve_root.{side}", "nerve", pts, radii, LAB["nerve_root"])
    return cl, drg


def medial_branch(ph: Phases, name: str, B: Level | None, s: int, side: str,
                  sacral: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                  facet_growth: float = 0.0) -> tuple[Centerline, np.ndarray]:
    """Medial branch crossing the SAP–TP junction of B (or the sacral ala for L5)."""
    if B is not None:
        d = B.dims
        g = geometry(B)
        xj = d.canal_width / 2 + d.pedicle_width + 1.5 + 7.0 * facet_growth
        y_back = g["y_tp"] - 3.0 - 2.2  # dorsal surface of the TP root + nerve radius
        zt = g["z_tp"] + g["tp_h"] / 2 - 1.0
        p0 = B.P(s * (xj + 9.0), g["y_tp"] + 1.0, zt + 12.0)
        p1 = B.P(s * (xj + 1.0), y_back, zt)
        p2 = B.P(s * (xj - 2.0), y_back - 1.5, zt - 7.0)
        p3 = B.P(s * (xj - 7.0), g["yp"] - 12.0, zt - 16.0)
    else:
        p1, up, out = sacral
        p0 = p1 + out * 9.0 + up * 12.0
        p2 = p1 - up * 7.0 - out * 2.0
        p3 = p1 - up * 16.0 - out * 7.0
    pts = np.array([p0, p1, p2, p3])
    radii = np.full(4, 1.3)  # nerve with its perineural fat
    ph.add("nerve_small", Tube(pts, radii), "medial_branch", never_into=BONE)
    return Centerline(name, "nerve", pts, radii, LAB["medial_branch"]), p1


def facet_target(B: Level, s: int, angle: float) -> np.ndarray:
    c, n, t, up = joint_frame(B, s, angle)
    return c


__all__ = ["foramen_strokes", "posterior_ligaments", "canal_strokes", "root_and_drg",
           "medial_branch", "foramen_points", "facet_target", "SIDES"]
