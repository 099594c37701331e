"""Shapes of the parts of a thoracolumbar vertebra (T11–L5), in its local frame.

Local frame: x right, y anterior, z = end-plate normal, origin = body centre; dimensions
from :class:`~needleguide.anatomy.phantom.anthropometry.VertebraDims`. Sources of the
numbers used here (see docs/anatomy.md, "Bone shapes"):

- end plates: central concavity 1.5 mm for the endplate above a disc (the inferior end
  plate of a vertebra), 0.7 mm for the one below it (the superior end plate); the central
  end plate ~70 % of the end-plate diameter, the ring apophysis (epiphyseal rim) 3–7 mm
  wide (Wang, Battié & Videman, Eur Spine J 2012;21:2316);
- pedicles: elliptic, width and height from Panjabi 1992 / Zindrick 1987 (taller than
  wide at L1–L4, wider than tall at L5);
- transverse processes: flattened, narrowing and thinning from root to tip, swept back,
  L3 longest, L5 thickest (Li et al. 2003, CT of 200 processes; Panjabi 1992 spans);
- spinous processes: quadrilateral blades with a thickened tip, one per level (length
  from Panjabi 1992); the waist of the body and the pars width are *assumptions* after
  standard anatomy texts.
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.phantom.sdf import Ellipsoid, EllipticCylinder, Shape, Union
from needleguide.anatomy.phantom.sdf_bone import TaperedBox, WaistedBody
from needleguide.anatomy.phantom.spine import Level, frame

# end-plate concavity (mm): inferior end plate (cranial to its disc) and superior
CUP_INFERIOR, CUP_SUPERIOR = 1.5, 0.7


def body_shape(lv: Level) -> Shape:
    """Waisted body: walls 5–6 % narrower at mid-height, flaring to the end-plate rims;
    squarer posterior half; cupped end plates inside the ring apophysis."""
    d = lv.dims
    return WaistedBody(lv.pose, half_width=d.body_width / 2, half_depth_ant=d.body_depth / 2,
                       half_depth_post=d.body_depth / 2, half_height=d.body_height / 2,
                       waist_x=0.055 * d.body_width, waist_y=0.05 * d.body_depth,
                       post_n=3.0, cup_top=CUP_SUPERIOR, cup_bottom=CUP_INFERIOR,
                       rim_start=0.55, rim_full=0.8, round_mm=1.5)


def pedicle_axis(lv: Level, s: int) -> np.ndarray:
    a = np.radians(lv.dims.pedicle_angle)
    return np.array([-s * np.sin(a), np.cos(a), 0.0])


def pedicle_shape(lv: Level, s: int, centre) -> Shape:
    """Elliptic cylinder (width × height from the tables) along the converging pedicle
    axis, from inside the body to the articular pillar: seen end-on, the 'owl eye'."""
    d = lv.dims
    length = d.canal_depth + 10.0
    return EllipticCylinder(lv.sub(centre, pedicle_axis(lv, s), (0, 0, 1)),
                            radii=(d.pedicle_width / 2, d.pedicle_height / 2),
                            half_height_mm=length / 2, round_mm=1.0)


def pars_half_width(lv: Level) -> float:
    return 0.5 * (0.35 * lv.dims.pedicle_width + 4.5)


def pillar_shapes(lv: Level, s: int, g: dict) -> list[Shape]:
    """Articular pillar behind the pedicle: wide where the superior articular process and
    the transverse process leave it, narrow at the pars interarticularis (the 'neck' of
    the Scotty dog), widening again into the root of the inferior articular process."""
    d = lv.dims
    H = d.body_height
    xp, yp, zp = g["xp"], g["yp"], g["zp"]
    cx, cy = s * (xp + 1.0), yp - 2.5
    z_top = zp + 0.3 * d.pedicle_height
    z_pars = zp - d.pedicle_height / 2 - 3.0
    z_bot = zp - 0.7 * H - 3.0
    pw = pars_half_width(lv)
    upper = TaperedBox(lv.sub((cx, cy, 0.5 * (z_top + z_pars)), (0, 0, 1), (0, 1, 0)),
                       half_lo=(pw, 3.5), half_hi=(d.pedicle_width / 2 + 1.0, 5.0),
                       half_height=0.5 * (z_top - z_pars), round_mm=2.0)
    lower = TaperedBox(lv.sub((cx, cy - 0.5, 0.5 * (z_pars + z_bot)), (0, 0, 1), (0, 1, 0)),
                       half_lo=(pw + 1.0, 4.5), half_hi=(pw, 3.5),
                       half_height=0.5 * (z_pars - z_bot), round_mm=2.0)
    return [upper, lower]


def transverse_shape(lv: Level, s: int, g: dict) -> tuple[Shape, np.ndarray]:
    """Transverse process: flattened, thinning and narrowing from root to tip, swept back
    12°. Returns the shape and the tip point (local)."""
    x0, x1 = g["x_tp_root"] - 2.0, g["x_tp_tip"]
    back = np.radians(12.0)
    a = np.array([s * x0, g["y_tp"], g["z_tp"]])
    b = np.array([s * x1, g["y_tp"] - np.tan(back) * (x1 - x0), g["z_tp"]])
    h = g["tp_h"] / 2
    if lv.name == "L5":  # broad and thick, arising from pedicle and body
        root, tip = (5.0, h + 2.5), (3.6, 0.75 * h)
    elif lv.name.startswith("T"):
        root, tip = (3.0, h + 0.5), (2.3, 0.7 * h)
    else:
        root, tip = (3.2, h + 1.5), (2.0, 0.65 * h)
    L = float(np.linalg.norm(b - a))
    ax = (b - a) / L
    # local z along the process, local y = vertebral up (height), x = thickness
    fr = lv.sub(0.5 * (a + b) - ax * 1.0, ax, (0, 0, 1))
    tp = TaperedBox(fr, half_lo=(root[0], root[1]), half_hi=(tip[0], tip[1]),
                    half_height=L / 2 + 1.0, round_mm=min(tip) - 0.2)
    return tp, b


def spinous_shape(lv: Level, g: dict) -> tuple[Shape, tuple[float, float, float]]:
    """Spinous process: a blade from the laminar junction backwards and slightly down,
    slightly lower towards the tip, ending in a thickened tip. Returns (shape, tip)."""
    d = lv.dims
    L = d.spinous_length
    yp = g["yp"]
    tilt = np.radians(d.spinous_tilt_deg)
    base = np.array([0.0, yp - 2.0, g["z_sp"]])
    tip = (0.0, yp - 4.0 - L + 3.0, g["z_sp"] - np.sin(tilt) * L)
    tipv = np.array(tip)
    ax = (tipv - base) / np.linalg.norm(tipv - base)
    length = float(np.linalg.norm(tipv - base))
    hs = d.spinous_height / 2
    # lens-shaped (elliptic) section, 7 mm thick at the base, so that no broad face of
    # the blade lies along the AP beam; the tip ~10 mm thick
    blade = EllipticCylinder(lv.sub(0.5 * (base + tipv), ax, (0, 0, 1)), radii=(3.5, hs),
                             half_height_mm=length / 2, top_scale=0.8, round_mm=1.0)
    knob = Ellipsoid(lv.sub(tip, (0, 0, 1), (0, 1, 0)), radii=(5.0, 4.5, 0.8 * hs))
    return Union([blade, knob]), tip


def articular_shapes(c, n, up, T: float, hs: float) -> tuple[Shape, Shape]:
    """Superior articular process of the level below (lateral, facing back-medially) and
    inferior articular process of the level above, both tapering to rounded tips: the
    'ear' and the 'front leg' of the Scotty dog. (c, n, up): joint centre, normal towards
    the SAP, superior direction."""
    sap = TaperedBox(frame(c + n * (hs + T / 2) - up * 1.75, up, n),
                     half_lo=(9.0, T / 2), half_hi=(5.5, 0.75 * T / 2), half_height=10.25,
                     round_mm=1.5)
    iap = TaperedBox(frame(c - n * (hs + T / 2) - up * 1.0, -up, n),
                     half_lo=(8.0, T / 2), half_hi=(5.0, 0.8 * T / 2), half_height=9.0,
                     round_mm=1.5)
    return sap, iap


__all__ = ["body_shape", "pedicle_shape", "pedicle_axis", "pillar_shapes",
           "transverse_shape", "spinous_shape", "articular_shapes", "pars_half_width",
           "CUP_INFERIOR", "CUP_SUPERIOR"]
