"""Body habitus from BMI: skin, subcutaneous fat, trunk outline, muscles, kidneys, viscera.

BMI mapping (documented in docs/anatomy.md):
- posterior subcutaneous fat at L4 ``t_post = 6 + 1.6 (BMI - 18)`` mm (min 4 mm);
  lateral ``1.25 t_post``, anterior abdominal ``1.6 t_post``, buttocks ``1.3 t_post``,
  lower thorax ``0.8 t_post``. Calibrated so that the skin-to-lamina depth at L4 is
  ~45 mm at BMI 22 (Sutton & Linter 1991: lumbar epidural space mostly 40–60 mm deep)
  and the skin-to-target depth at the L4–L5 medial-branch target ~ 76 mm at BMI 35
  (Rauch et al., RAPM 2009;34:340: 76 ± 15 mm at BMI > 30). Skin-to-epidural depth
  correlates with BMI (Clinkscales CP et al., IJOA 2007;16:323).
- over the midline lower sacrum and coccyx: ``4 + 0.9 (BMI - 18)`` mm of fat under the
  skin and no muscle (a groove cut into the back by the body pass; ``sacral_fat_mm``).
- visceral fat: the abdomen deepens by 2.5 mm per BMI unit above 24 (*assumption*).
- muscle size scales by ``1 + 0.008 (BMI - 24)`` (clipped 0.9–1.2) (*assumption*: muscle
  mass rises mildly with body mass).
"""

from __future__ import annotations

import numpy as np

from needleguide.anatomy.phantom.body import COLS, BodyLayers
from needleguide.anatomy.phantom.pelvis import Pelvis, PelvisDims
from needleguide.anatomy.phantom.sdf import Ellipsoid, EllipticCylinder, Tube
from needleguide.anatomy.phantom.spine import Level, frame
from needleguide.anatomy.phantom.vertebra import LAB, Phases, geometry

SKIN_MM = 2.0


def fat_thickness_mm(bmi: float) -> float:
    """Posterior subcutaneous fat thickness at L4 (mm) for a BMI (kg/m²)."""
    return max(4.0, 6.0 + 1.6 * (bmi - 18.0))


def sacral_fat_mm(bmi: float) -> float:
    """Subcutaneous fat over the midline lower sacrum and coccyx (mm) for a BMI (kg/m²).

    *Assumption*, calibrated to: skin to sacral cornua 5.2 ± 3.4 mm in adults with spinal
    disorders (ultrasound, 76 patients); the skin-to-sacrococcygeal-ligament distance is
    greater in obese patients (Park et al., Clin Pain 2008;7:7) but the base of the sacrum
    stays well under 8 cm deep even above 100 kg (Chen et al., Anesthesiology
    2005;102:693). It grows about half as fast with BMI as the fat over L4."""
    return max(4.0, 4.0 + 0.9 * (bmi - 18.0))


def muscle_scale(bmi: float) -> float:
    return float(np.clip(1.0 + 0.008 * (bmi - 24.0), 0.9, 1.2))


def body_layers(levels: dict[str, Level], pv: Pelvis, p: PelvisDims, bmi: float,
                z_top: float, z_bottom: float, rng: np.random.Generator) -> BodyLayers:
    """Cross-section table from T11 to below the hips."""
    tf = fat_thickness_mm(bmi) * float(np.clip(1 + rng.normal(0, 0.08), 0.8, 1.2))
    m = muscle_scale(bmi)
    visc = 2.5 * max(bmi - 24.0, -4.0)
    rows = []

    def add(z, cy, ax, y_post, y_ant, w_post, w_ant, fpost, flat, fant, wall, y_back, cm,
            x_back=0.0, pm=(0.0, 0.0, 0.0, 0.0)):
        rows.append((z, dict(cx=0.0, cy=cy, ax=ax, ay_post=cy - y_post, ay_ant=y_ant - cy,
                             w_post=w_post, w_ant=w_ant, t_post=fpost, t_lat=flat,
                             t_ant=fant, wall=wall, y_back=y_back, core_muscle=cm,
                             x_back=x_back, pm_cx=pm[0], pm_cy=pm[1], pm_rx=pm[2],
                             pm_ry=pm[3])))

    order = ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    width = {"T11": 142, "T12": 140, "L1": 136, "L2": 131, "L3": 128, "L4": 136, "L5": 146}
    for n in order:
        lv = levels[n]
        g = geometry(lv)
        tip = lv.P(0, g["y_tip"], g["z_sp"])
        ant = lv.P(0, lv.dims.body_depth / 2, 0)
        y_post = tip[1] - 8.0 * m
        thor = n in ("T11", "T12")
        depth = {"T11": 112.0, "T12": 106.0, "L1": 100.0}.get(n, 95.0)
        vf = {"T11": 0.5, "T12": 0.7, "L1": 0.9}.get(n, 1.0)
        y_ant = ant[1] + depth * m + visc * vf
        k = 0.8 if thor else 1.0
        add(lv.center[2], ant[1], width[n] * m, y_post, y_ant, 0.15, 0.8, tf * k,
            1.25 * tf * k, 1.6 * tf * k, 13.0 if not thor else 16.0,
            ant[1] - lv.dims.body_depth - 2.0, 0.0, lv.dims.body_width / 2 + 48.0 * m,
            paraspinal_section(lv, m))
    s1 = pv.s1
    hip = 0.5 * (pv.hips["right"] + pv.hips["left"])
    sac_back = pv.segments[1][:3, 3] - pv.segments[1][:3, 1] * (pv.thick[1] - 14.0)
    T = pv.segments[1]
    rx, ry = 19.0 * m, 11.0 * m
    mf = T[:3, :3] @ np.array([rx + 2.0, -pv.thick[1] + 12.0 - ry, 0]) + T[:3, 3]
    # behind the sacrum: muscle and fascia (the back block), not viscera
    add(s1.center[2], s1.center[1] + 10.0, 152 * m, sac_back[1] - 26.0 * m,
        hip[1] + 95.0 * m + visc, 0.2, 0.8, 1.2 * tf, 1.3 * tf, 1.5 * tf, 12.0,
        sac_back[1] + 4.0, 0.0, 75.0 * m, (mf[0], mf[1], rx, ry))
    sac_low = pv.segments[3][:3, 3] - pv.segments[3][:3, 1] * (pv.thick[3] - 10.0)
    add(hip[2] + 35.0, hip[1] - 15.0, 160 * m, sac_back[1] - 38.0 * m, hip[1] + 75.0 * m
        + 0.6 * visc, 0.5, 0.7, 1.3 * tf, 1.25 * tf, 1.4 * tf, 10.0, sac_low[1] + 4.0, 0.0,
        80.0 * m)
    add(hip[2] - 5.0, hip[1] - 10.0, (p.hip_separation / 2 + 72.0) * m, hip[1] - 110.0 * m,
        hip[1] + 62.0 * m + 0.3 * visc, 0.45, 0.6, 1.35 * tf, 1.2 * tf, 1.1 * tf, 10.0,
        -1e4, 1.0)
    add(z_bottom - 10.0, hip[1] - 10.0, (p.hip_separation / 2 + 70.0) * m,
        hip[1] - 100.0 * m, hip[1] + 60.0 * m, 0.45, 0.6, 1.2 * tf, 1.2 * tf, 1.0 * tf, 10.0,
        -1e4, 1.0)
    rows.sort(key=lambda r: r[0])
    z = np.array([r[0] for r in rows])
    tab = np.array([[r[1].get(c, 0.0) for c in COLS] for r in rows])
    # extend the top row above T11
    z = np.concatenate([z, [z_top + 20.0]])
    tab = np.vstack([tab, tab[-1:]])
    z, tab = _sacral_groove(z, tab, pv, sacral_fat_mm(bmi) * tf / fat_thickness_mm(bmi),
                            z_bottom)
    return BodyLayers(z, tab, skin_mm=SKIN_MM, skin_label=LAB["skin"],
                      fat_label=LAB["subcutaneous_fat"], wall_label=LAB["muscle"],
                      back_label=LAB["muscle"], core_label=LAB["soft_tissue"],
                      paired_label=LAB["paraspinal_muscle"])


def _sacral_dorsum(pv: Pelvis) -> list[tuple[np.ndarray, float, float, float]]:
    """Midline dorsal surface of the sacrum and coccyx, cranial to caudal: (point, floor
    half width, wall flare, corner radius) of the skin groove over it. Over S2–S3 the
    back is broad and flat; at the hiatus (S4–S5) the floor is still flat wide enough for
    a linear probe; over the coccyx it narrows into the natal cleft."""
    from needleguide.anatomy.phantom.pelvis import LIGAMENT_Y, _seg

    out = []
    shape = {1: (40.0, 1.6, 14.0), 2: (30.0, 1.2, 12.0), 3: (24.0, 0.9, 10.0),
             4: (20.0, 0.7, 9.0)}
    for i in range(1, 5):
        th = pv.thick[i]
        r1 = max(18.0 - 2.5 * i, 7.0)
        # S5: the dorsal surface of the sacrococcygeal ligament; over S2 (S3) the
        # aponeurosis and fat are thicker (*assumption*): the groove fades out upwards
        y = r1 - 1.025 * th if i < 4 else -th + LIGAMENT_Y - 1.6
        y -= {1: 14.0, 2: 4.0}.get(i, 0.0)
        for zz in (pv.seg_half_h * 0.5, -pv.seg_half_h * 0.5):
            out.append((_seg(pv, i, 0.0, y, zz), *shape[i]))
    T = pv.segments[-1]
    base = T[:3, 3] - T[:3, 2] * pv.seg_half_h
    up, ant = T[:3, 2], T[:3, 1]
    for k in range(3):
        rot = np.radians(12.0 * (k + 1))
        u = up * np.cos(rot) - ant * np.sin(rot)
        a = ant * np.cos(rot) + up * np.sin(rot)
        c = base - u * (5.0 + 9.0 * k)
        out.append((c - a * (6.0 - k), 14.0 - 3.0 * k, 0.5, 7.0 - k))
    return out


def _sacral_groove(z: np.ndarray, tab: np.ndarray, pv: Pelvis, fat: float, z_bottom: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Add the midline groove over the lower sacrum and coccyx (columns g_*): the skin
    there lies over ``fat`` mm of fat on the bone, with no muscle between (the erector
    spinae and multifidus end as an aponeurosis over the sacrum; the gluteal masses lie
    lateral, the natal cleft between them)."""
    ci = {c: i for i, c in enumerate(COLS)}
    pts = _sacral_dorsum(pv)
    # the fat reaches 2 mm into the bone (painted over) so no muscle sliver remains
    zf = np.array([p[0][2] for p in pts])
    yf = np.array([p[0][1] - fat - SKIN_MM + 2.0 for p in pts])
    shp = np.array([p[1:] for p in pts])
    # the cleft continues below the coccyx tip to the bottom of the region
    zf = np.concatenate([[z_bottom - 30.0], zf[::-1]])
    yf = np.concatenate([[yf[-1] - 6.0], yf[::-1]])
    shp = np.vstack([shp[-1:], shp[::-1]])
    z_top = zf[-1] + 40.0  # the groove fades out over S1–S2
    zq = np.concatenate([zf, [z_top]])
    yq = np.concatenate([yf, [yf[-1] - 40.0]])
    # a smooth skin line: the floor sampled every 2 mm, smoothed (Gaussian, sd 6 mm),
    # tabulated every 6 mm
    zg = np.arange(zq[0], z_top + 1e-6, 2.0)
    k = np.exp(-0.5 * (np.arange(-9, 10) * 2.0 / 6.0) ** 2)
    yg = np.convolve(np.pad(np.interp(zg, zq, yq), 9, mode="edge"), k / k.sum(), "valid")
    zs = zg[::3]
    zn = np.unique(np.concatenate([z, zs, [z_top]]))
    tn = np.column_stack([np.interp(zn, z, tab[:, i]) for i in range(tab.shape[1])])
    y_skin = tn[:, ci["cy"]] - tn[:, ci["ay_post"]] - tn[:, ci["t_post"]] - SKIN_MM
    y_floor = np.interp(zn, zg, yg)
    depth = np.where(zn <= z_top, np.maximum(y_floor - y_skin, 0.0), 0.0)
    tn[:, ci["g_d"]] = depth
    for j, c in enumerate(("g_w", "g_k", "g_r")):
        tn[:, ci[c]] = np.interp(zn, zq, np.concatenate([shp[:, j], shp[-1:, j]]))
    tn[:, ci["g_t"]] = fat
    return zn, tn


def paraspinal_section(lv: Level, m: float) -> tuple[float, float, float, float]:
    """Erector spinae + multifidus of one side at ``lv``'s mid-height, as an ellipse
    (|x| centre, y centre, half width, half depth) in patient mm, for the body pass."""
    g = geometry(lv)
    lum = lv.name.startswith("L")
    rx = (33.0 if lum else 27.0) * m
    ry = (26.0 if lum else 22.0) * m
    if lv.name == "L5":
        rx, ry = 30.0 * m, 22.0 * m
    c = lv.P(rx + 2.0, g["yp"] - ry + 9.0, 0.0)
    return float(c[0]), float(c[1]), rx, ry


def muscle_strokes(ph: Phases, levels: dict[str, Level], pv: Pelvis, p: PelvisDims, bmi: float
                   ) -> None:
    """Paraspinal (erector spinae + multifidus), psoas, iliacus, gluteal muscles, kidneys."""
    m = muscle_scale(bmi)
    into = ("muscle", "soft_tissue")
    # (the paraspinal muscles are drawn by the body-layer pass: paraspinal_section)
    # quadratus lumborum: lateral to the transverse-process tips, T12 to the iliac crest
    for n in ("T12", "L1", "L2", "L3", "L4"):
        lv = levels[n]
        g = geometry(lv)
        d = lv.dims
        r = (11.0 if n == "T12" else 15.0) * m
        for s in (1, -1):
            ph.add("muscle", EllipticCylinder(
                lv.sub((s * (d.tp_span / 2 + 0.6 * r), g["y_tp"] - 3.0, 0.0), (0, 0, 1),
                       (s * 0.35, 1, 0)),
                radii=(r, 0.7 * r), half_height_mm=d.body_height / 2 + d.disc_below),
                "muscle", only_into=("soft_tissue",))
    # psoas: from T12 along the bodies, over the pelvic brim to the lesser trochanter
    for s, side in ((1, "right"), (-1, "left")):
        pts, rad = [], []
        for n, r in (("T12", 5.0), ("L1", 8.0), ("L2", 11.0), ("L3", 15.0), ("L4", 18.0),
                     ("L5", 20.0)):
            lv = levels[n]
            rr = r * m
            pts.append(lv.P(s * (lv.dims.body_width / 2 + 0.6 * rr), -4.0 + 0.2 * rr,
                            0.0))
            rad.append(rr)
        hip = pv.hips[side]
        pts.append(hip + np.array([-s * 20.0, 22.0, 55.0]))
        rad.append(18.0 * m)
        pts.append(hip + np.array([-s * 12.0, 32.0, 0.0]))
        rad.append(14.0 * m)
        pts.append(hip + np.array([-s * 2.0, 20.0, -45.0]))
        rad.append(11.0 * m)
        ph.add("muscle", Tube(np.array(pts), np.array(rad)), "psoas", only_into=into)
        # iliacus in the iliac fossa (generic muscle)
        wing = np.array([s * 75.0, hip[1] + 10.0, hip[2] + 75.0])
        ph.add("muscle", Ellipsoid(frame(wing, (s * 0.3, 0, 1), (s * -0.6, 0.8, 0)),
                                   radii=(40.0, 12.0 * m, 38.0)), "muscle", only_into=into)
        # gluteus maximus and medius
        gmax = hip + np.array([-s * 8.0, -78.0 * m, 12.0])
        ph.add("muscle", Ellipsoid(frame(gmax, (s * -0.35, 0.15, 1), (0, 1, 0)),
                                   radii=(72.0 * m, 34.0 * m, 92.0)), "gluteal_muscle",
               only_into=into)
        gmed = np.array([s * (p.iliac_crest_width / 2 - 2.0), hip[1] - 10.0, hip[2] + 62.0])
        ph.add("muscle", Ellipsoid(frame(gmed, (s * 0.35, 0, 1), (s * 0.3, 1, 0)),
                                   radii=(30.0 * m, 62.0, 55.0)), "gluteal_muscle",
               only_into=into)
    # pelvic cavity (bladder, rectum, pelvic fat) as soft tissue inside the muscle core
    hip = 0.5 * (pv.hips["right"] + pv.hips["left"])
    ph.add("muscle", Ellipsoid(frame(hip + np.array([0, 5.0, 30.0]), (0, 0.3, 1), (0, 1, 0)),
                               radii=(p.hip_separation / 2 - 38.0, 42.0, 55.0)),
           "soft_tissue", only_into=("muscle",))


def organ_strokes(ph: Phases, levels: dict[str, Level], rng: np.random.Generator) -> None:
    """Kidneys (L1–L3, the right ~15 mm lower) and a few pockets of bowel gas."""
    for s, n, dz in ((1, "L2", -5.0), (-1, "L1", 0.0)):
        lv = levels[n]
        c = lv.P(s * (lv.dims.body_width / 2 + 42.0), 8.0, dz)
        ph.add("organ", Ellipsoid(frame(c, (s * 0.25, -0.1, 1), (s * 0.5, 1, 0)),
                                  radii=(27.0, 20.0, 52.0)), "kidney",
               only_into=("soft_tissue", "muscle"))
    L1, L5 = levels["L1"], levels["L5"]
    for _ in range(int(rng.integers(3, 7))):
        z = float(rng.uniform(L5.center[2] - 20, L1.center[2]))
        x = float(rng.uniform(-90, 90))
        y = float(rng.uniform(L1.center[1] + 55, L1.center[1] + 100))
        r = rng.uniform(6, 16, size=3)
        ph.add("organ", Ellipsoid(frame((x, y, z), (0, 0, 1), (0, 1, 0)), radii=tuple(r)),
               "internal_air", only_into=("soft_tissue",))


def rib_strokes(ph: Phases, levels: dict[str, Level]) -> None:
    from needleguide.anatomy.phantom.vertebra import rib

    for n, k in (("T11", 1.0), ("T12", 0.7)):
        for s in (1, -1):
            ph.add("bone", rib(levels[n], s, k), "rib")


__all__ = ["body_layers", "muscle_strokes", "organ_strokes", "rib_strokes",
           "fat_thickness_mm", "sacral_fat_mm", "muscle_scale", "paraspinal_section"]
