"""Named standard views: a probe pose computed from the patient's vertebrae and landmarks.

Each view gives a target point, a nominal beam direction and the array direction; the probe
is then placed on the skin along the beam line through the target (found by marching out
of the body in the labelmap) and pressed 1 mm in. Orientation: the probe's marker side is
the image left: cranial in longitudinal views, the patient's right in transverse views.
Lumbar views assume the patient prone (probe on the back), the hip and neck views supine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide import geometry
from needleguide.anatomy.patient import Patient, Vertebra
from needleguide.errors import UserError, check_choice

VIEW_INFO: dict[str, tuple[str, str, str]] = {
    # name: (region, default probe, description)
    "paramedian-sagittal": ("lumbar", "curvilinear",
                            "paramedian sagittal oblique: laminae / articular 'sawtooth', "
                            "counting levels up from the sacrum"),
    "transverse-spinous": ("lumbar", "curvilinear",
                           "transverse over the spinous process: spinous process, laminae"),
    "transverse-facet": ("lumbar", "curvilinear",
                         "transverse at the SAP–transverse process junction (medial branch)"),
    "sij-transverse": ("lumbar", "curvilinear",
                       "transverse at S2: the sacroiliac joint cleft between sacrum and ilium"),
    "caudal-transverse": ("lumbar", "linear",
                          "transverse over the sacral hiatus: the two cornua ('frog eyes')"),
    "caudal-longitudinal": ("lumbar", "linear",
                            "longitudinal midline over the hiatus: sacrococcygeal ligament"),
    "c6-transverse": ("cervical", "linear",
                      "transverse at C6: anterior tubercle, longus colli, carotid (SGB)"),
    "c2c3-longitudinal": ("cervical", "linear",
                          "longitudinal lateral over the C2–C3 facet (third occipital nerve)"),
    "hip-anterior-oblique": ("lumbar", "curvilinear",
                             "anterior oblique along the femoral neck (hip injection)"),
}
VIEWS = tuple(VIEW_INFO)
# paramedian sagittal oblique: the plane passes the laminae this far from the midline, the
# beam tilted medially, so it looks through the interlaminar windows (anterior complex)
PARAMEDIAN_OFFSET_MM = 5.0
PARAMEDIAN_TILT_DEG = 15.0
# views whose image plane the technique fixes to the anatomy: heel–toe tilt ≤ this
ANATOMY_ALIGNED = ("sij-transverse", "c2c3-longitudinal")
IN_PLANE_TILT_DEG = 10.0


@dataclass(frozen=True)
class View:
    """A computed probe pose and what it is aimed at."""

    name: str
    probe: str
    ProbeToPatient: np.ndarray
    target_mm: np.ndarray
    target_depth_mm: float
    depth_mm: float
    level: str | None
    side: str
    frequency_mhz: float = 0.0

    def to_json(self) -> dict:
        return {"name": self.name, "probe": self.probe, "level": self.level, "side": self.side,
                "frequency_mhz": round(float(self.frequency_mhz), 2),
                "target_mm": np.round(self.target_mm, 3).tolist(),
                "target_depth_mm": round(float(self.target_depth_mm), 2),
                "depth_mm": float(self.depth_mm), "description": VIEW_INFO[self.name][2]}


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _lm(p: Patient, *names: str) -> np.ndarray | None:
    for n in names:
        if n in p.landmarks:
            return np.asarray(p.landmarks[n].position_mm, float)
    return None


def _vx(v: Vertebra, *keys: str) -> np.ndarray | None:
    for k in keys:
        x = v.extra.get(k)
        if x is not None and np.asarray(x).shape == (3,):
            return np.asarray(x, float)
    return None


def _vert(p: Patient, name: str) -> Vertebra:
    if name not in p.vertebrae:
        raise UserError(f"level: vertebra {name!r} is not in this patient; available: "
                        f"{', '.join(p.vertebrae)}")
    return p.vertebrae[name]


def _levels(p: Patient, level: str | None, default: str) -> list[Vertebra]:
    lv = level or default
    names = [n.strip() for n in lv.split("-")]
    if not 1 <= len(names) <= 2 or not all(names):
        raise UserError(f"level: expected a vertebra ('L4') or a segment ('L4-L5'), got {lv!r}")
    return [_vert(p, n) for n in names]


def _lamina(p: Patient, v: Vertebra, s: int) -> np.ndarray:
    side = "right" if s > 0 else "left"
    x = _lm(p, f"{v.name}.lamina.{side}")
    if x is None:
        x = _vx(v, f"lamina_{side}", f"lamina.{side}", f"lamina_center_{side}")
    if x is not None:
        return x
    return v.center_mm - v.anterior * (v.body_depth_mm / 2 + 22.0) + v.right * s * 12.0


def _spinous_tip(p: Patient, v: Vertebra) -> np.ndarray:
    x = _lm(p, f"{v.name}.spinous_tip")
    if x is None:
        x = _vx(v, "spinous_tip", "spinous_process_tip", "spinous.tip")
    if x is not None:
        return x
    return v.center_mm - v.anterior * (v.body_depth_mm / 2 + 50.0)


def _skin_point(p: Patient, target: np.ndarray, beam: np.ndarray, max_mm: float = 250.0):
    """First point outside the body walking from ``target`` against the beam; returns the
    last in-body point (the skin) and its distance from the target."""
    step = float(min(0.5, p.spacing_mm.min() / 2))
    t = np.arange(0.0, max_mm, step)
    pts = target[None] - t[:, None] * beam[None]
    lab = p.label_at(pts)
    out = np.nonzero(lab == 0)[0]
    if out.size == 0:
        raise UserError("view: no skin found along the beam line (target outside the volume?)")
    i = max(int(out[0]) - 1, 0)
    return pts[i], float(t[i])


def _inward_normal(p: Patient, skin: np.ndarray, radius_mm: float = 6.0) -> np.ndarray:
    """Unit vector from the skin point towards the centroid of nearby body voxels."""
    o = np.linspace(-radius_mm, radius_mm, 9)
    g = np.stack(np.meshgrid(o, o, o, indexing="ij"), -1).reshape(-1, 3)
    g = g[np.linalg.norm(g, axis=1) <= radius_mm]
    inside = p.label_at(skin[None] + g) != 0
    if not inside.any():
        return np.zeros(3)
    c = g[inside].mean(axis=0)
    n = float(np.linalg.norm(c))
    return c / n if n > 1e-6 else np.zeros(3)


def standard_view(p: Patient, name: str, level: str | None = None, side: str = "right",
                  probe: str | None = None, depth_mm: float | None = None) -> View:
    """Probe pose of the named view for ``level`` and ``side`` on patient ``p``."""
    check_choice("view", name, VIEWS)
    check_choice("side", side, ("right", "left"))
    s = 1 if side == "right" else -1
    region = VIEW_INFO[name][0]
    if region == "cervical" and not any(n.startswith("C") for n in p.vertebrae) \
            or region == "lumbar" and not any(n.startswith("L") for n in p.vertebrae):
        raise UserError(f"view: {name!r} needs the {region} region")
    R = np.array([1.0, 0, 0])
    A = np.array([0.0, 1, 0])
    S = np.array([0.0, 0, 1])
    lvl_used = level
    extra_depth = 25.0
    aim = None
    if name in ("paramedian-sagittal", "transverse-spinous", "transverse-facet"):
        vs = _levels(p, level, "L4-L5")
        lvl_used = "-".join(v.name for v in vs)
        ant = _unit(sum(v.anterior for v in vs))
        sup = _unit(sum(v.superior for v in vs))
        right = _unit(np.cross(ant, sup))
        if name == "paramedian-sagittal":
            target = np.mean([_lamina(p, v, s) for v in vs], axis=0)
            target = target - right * ((target - np.mean([v.center_mm for v in vs], axis=0))
                                       @ right - s * PARAMEDIAN_OFFSET_MM)
            tilt = np.deg2rad(PARAMEDIAN_TILT_DEG)  # oblique: beam aimed medially
            beam = _unit(np.cos(tilt) * ant - np.sin(tilt) * s * right)
            lat = -sup  # cranial on the image left
            extra_depth = 35.0
            # slide caudally so that the sacrum is in view (levels are counted from it)
            if "S1" in p.vertebrae and vs[-1].name != "S1":
                sac = _lamina(p, p.vertebrae["S1"], s)
                sac = sac - right * ((sac - p.vertebrae["S1"].center_mm) @ right
                                     - s * PARAMEDIAN_OFFSET_MM)
                if np.linalg.norm(sac - target) < 75.0:
                    aim = 0.5 * (target + sac)
        elif name == "transverse-spinous":
            v = vs[0]
            tip = _spinous_tip(p, v)
            target = tip + (v.center_mm - tip) * 0.6
            beam, lat = ant, -right
            extra_depth = 15.0
        else:
            v = vs[-1]
            mb = _lm(p, f"{vs[0].name}.medial_branch.{side}", f"{v.name}.medial_branch.{side}")
            tp = _lm(p, f"{v.name}.transverse_process.{side}")
            if mb is None:
                mb = (v.center_mm - ant * (v.body_depth_mm / 2 + 8.0) + right * s * 22.0
                      if tp is None else tp)
            if tp is not None:  # the plane halfway down to the transverse process centre
                mb = mb + 0.5 * sup * ((tp - mb) @ sup)
            target = mb
            aim = mb - s * right * 12.0  # centred between the SAP–TP junction and lamina
            beam, lat = ant, -right
            extra_depth = 30.0
    elif name == "sij-transverse":
        t = _lm(p, f"sij.{side}.inferior", f"sij.{side}", f"sij.{side}.superior")
        if t is None:
            raise UserError("view: this patient has no sacroiliac joint landmark")
        target, beam, lat = t - s * R * 12.0, A, -R
        lvl_used = "S2"
    elif name in ("caudal-transverse", "caudal-longitudinal"):
        t = _lm(p, "sacral_hiatus")
        if t is None:
            raise UserError("view: this patient has no 'sacral_hiatus' landmark")
        beam = A  # prone; the probe then tilts to the skin over the sacral apex
        target = t
        lat = -R if name == "caudal-transverse" else -_unit(S - beam * (S @ beam))
        lvl_used = None
        extra_depth = 12.0
    elif name == "c6-transverse":
        t = _lm(p, f"C6.anterior_tubercle.{side}")
        if t is None:
            raise UserError("view: this patient has no 'C6.anterior_tubercle' landmark")
        beam = _unit(-A - 0.25 * s * R)  # supine: from the anterolateral neck
        target = t - s * R * 6.0
        lat = -_unit(R - beam * (R @ beam))
        lvl_used = "C6"
        extra_depth = 12.0
    elif name == "c2c3-longitudinal":
        t = _lm(p, f"C2-C3.facet.{side}")
        if t is None:
            raise UserError("view: this patient has no 'C2-C3.facet' landmark")
        beam = -s * R  # from the side of the neck, medially
        target, lat = t, -S
        lvl_used = "C2-C3"
        extra_depth = 12.0
    else:  # hip-anterior-oblique
        neck = _lm(p, f"hip.{side}.femoral_neck")
        if neck is None:
            raise UserError("view: this patient has no 'hip.<side>.femoral_neck' landmark")
        head = _lm(p, f"hip.{side}.femoral_head")
        beam = -A  # supine, from the front
        axis = _unit(head - neck) if head is not None else _unit(-s * R * 0.75 + S * 0.6)
        axis = _unit(axis - beam * (axis @ beam))
        target, lat = neck, -axis  # head (cranial-medial) on the image left
        lvl_used = None
        extra_depth = 30.0
    # views whose plane the technique fixes to the anatomy (the C2–C3 articular column
    # horizontal, the S2 transverse section): the probe rocks out of the plane to meet the
    # skin, heel–toe within it by at most IN_PLANE_TILT_DEG (the soft tissue under the face
    # conforms to it: us/imager.py); an in-plane tilt to the full skin slope (~40° over the
    # buttock, ~20° on the neck) drew their anatomy rotated by as much
    P2P, tdepth = place_probe(p, target, beam, lat, aim,
                              in_plane_only=name == "paramedian-sagittal",
                              max_in_plane_deg=IN_PLANE_TILT_DEG
                              if name in ANATOMY_ALIGNED else None)
    pk = probe or VIEW_INFO[name][1]
    from needleguide.us.probe import PROBES

    check_choice("probe", pk, tuple(PROBES))
    if depth_mm is None:
        depth_mm = float(np.clip(5 * np.ceil((tdepth + extra_depth) / 5), 20,
                                 PROBES[pk].max_depth_mm))
    return View(name, pk, P2P, target, tdepth, float(depth_mm), lvl_used, side,
                preset_frequency_mhz(pk, tdepth, path_alpha(p, P2P, tdepth)))


def path_alpha(p: Patient, ProbeToPatient: np.ndarray, depth_mm: float) -> float:
    """Mean attenuation coefficient (dB/cm/MHz) of the tissue on the central beam line from
    the face to ``depth_mm`` (what the view preset's penetration rule has to cross)."""
    r = np.arange(0.25, max(depth_mm, 0.5), 0.5)
    pts = ProbeToPatient[:3, 3][None] + r[:, None] * ProbeToPatient[:3, 1][None]
    lab = p.label_at(pts)
    a = p.tissues.lut("alpha_db_cm_mhz")[lab]
    soft = (a < 10.0) & (lab != 0)  # bone is not penetrated by any frequency
    return float(a[soft].mean()) if soft.any() else 0.8


def place_probe(p: Patient, target: np.ndarray, beam: np.ndarray, lat: np.ndarray,
                aim: np.ndarray | None = None, in_plane_only: bool = False,
                max_tilt_deg: float = 25.0,
                max_in_plane_deg: float | None = None) -> tuple[np.ndarray, float]:
    """``(ProbeToPatient, target depth in mm)`` of a probe whose beam line (unit ``beam``,
    array along ``lat``) passes through ``aim`` (default ``target``): the probe rests flat on
    the skin (the beam tilted towards the inward skin normal by at most ``max_tilt_deg``;
    within the image plane only when ``in_plane_only``), ``target`` stays in the image plane,
    and the face is pressed 1 mm into the skin. With ``max_in_plane_deg`` the tilt is split:
    out of the image plane (about the array axis) up to ``max_tilt_deg``, within it (about
    the elevation axis, heel–toe) up to ``max_in_plane_deg``, so the array keeps its
    direction in the anatomy."""
    beam = _unit(beam)
    lat = _unit(lat - beam * (lat @ beam))
    aim = target if aim is None else aim
    skin, _ = _skin_point(p, aim, beam)
    n_in = _inward_normal(p, skin)
    if in_plane_only:
        elev = np.cross(lat, beam)
        n_in = n_in - elev * (n_in @ elev)
    if max_in_plane_deg is not None and np.linalg.norm(n_in) > 1e-6:
        elev = _unit(np.cross(lat, beam))
        nb = float(n_in @ beam)
        if nb > 1e-6:
            a_out = np.clip(np.arctan2(n_in @ elev, nb), *np.deg2rad([-max_tilt_deg,
                                                                      max_tilt_deg]))
            a_in = np.clip(np.arctan2(n_in @ lat, nb), *np.deg2rad([-max_in_plane_deg,
                                                                    max_in_plane_deg]))
            beam = _unit(beam + np.tan(a_out) * elev + np.tan(a_in) * lat)
            elev = _unit(np.cross(lat, beam))
            lat = _unit(np.cross(beam, elev))
    elif np.linalg.norm(n_in) > 1e-6:
        n_in = _unit(n_in)
        ang = float(np.arccos(np.clip(n_in @ beam, -1, 1)))
        if ang > 1e-3:
            ang_c = min(ang, np.deg2rad(max_tilt_deg))
            beam = _unit(np.cos(ang_c) * beam
                         + np.sin(ang_c) * _unit(n_in - beam * (n_in @ beam)))
            elev = _unit(np.cross(lat, beam))
            lat = _unit(np.cross(beam, elev))
    n_pl = np.cross(lat, beam)  # keep the target in the image plane
    aim = aim - n_pl * ((aim - target) @ n_pl)
    skin, _ = _skin_point(p, aim, beam)
    face = skin + beam * 1.0  # pressed 1 mm into the skin
    return geometry.frame_from_axes(face, lat, beam), float((target - face) @ beam)


def preset_frequency_mhz(probe: str, target_depth_mm: float, alpha_db_cm_mhz: float = 0.8) -> float:
    """The view preset's frequency: the probe's default, lowered (within its band) so that
    the round-trip loss to the target at ``alpha_db_cm_mhz`` (the views: the mean of the
    tissue on the beam line, :func:`path_alpha`; default 0.8) stays ≤ 55 dB."""
    from needleguide.us.probe import PROBES

    spec = PROBES[probe]
    f_pen = 55.0 / (2.0 * alpha_db_cm_mhz * max(target_depth_mm, 1.0) / 10.0)
    return float(np.clip(min(spec.f_default_mhz, f_pen), spec.fmin_mhz, spec.fmax_mhz))
