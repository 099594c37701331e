"""The virtual operator's modality-specific hands and eyes: plan the path, image each step,
estimate the tip from the analyser, check the final position, confirm and inject.

Fluoroscopy (``FluoroOperator``): the working view is the catalogue's oblique (or
Ferguson) view, the check pair the other two catalogue views; one pulsed shot per step
(counted), and a second one in the first check view when the analyser finds nothing in the
working view; at the end a spot pair, both analysed and, when both find the needle, the
rays triangulated for the depth;
confirmation by a contrast test dose under live fluoroscopy (or DSA) read by the contrast
classifier and its intravascular alarm. Ultrasound (``USOperator``): the catalogue's view,
the probe slid along its elevation axis until the target lies in the plane (scanning), an
in-plane path, one live frame per step; the detected tip steers within the plane, the
depth comes from the needle markings (the analyser tends to place US tips short along the
shaft); confirmation by visible spread (anechoic fluid) around the tip.
"""

from __future__ import annotations

import numpy as np

from needleguide import geometry
from needleguide.errors import UserError
from needleguide.frame import Dose
from needleguide.scene import Scene
from needleguide.session import imaging as im
from needleguide.session.confirm import confirm_fluoro, confirm_us
from needleguide.session.models import ImagingGroup
from needleguide.session.plan import plan_fluoro_path, plan_in_plane_path

CHECK_GAP_MM = 3.0  # the two check rays must pass this close to each other
CHECK_FAR_MM = 10.0  # and meet this close to the planned tip position
CHECK_MOVE_MM = 6.0  # largest depth correction after the check pair
CHECK_AGREE_MM = 3.0  # two views' depths this close are averaged (else: the side-on view)


class Operator:
    """Common state: plan, key frames, video frames, shot count, and (``cfg.keep_frames``)
    the frames shown, without truth, grouped for storage (:meth:`record`)."""

    def __init__(self, cfg, proc, patient, target, level, side):
        self.cfg, self.proc, self.patient = cfg, proc, patient
        self.target = np.asarray(target, float)
        self.level, self.side = level, side
        self.key_frames: list[tuple[str, np.ndarray]] = []
        self.video: list[np.ndarray] = []
        self.shots = 0
        self.confirm_info: dict = {}
        self.last_rgb: np.ndarray | None = None
        self.analyser: dict[str, dict[str, int]] = {}  # per view: frames analysed, found
        self.imaging: dict[tuple[str, str], ImagingGroup] = {}

    def record(self, label: str, view: str, mode: str, frames, mask_frame_numbers=None
               ) -> None:
        """Keep ``frames`` (as shown, truth removed) in the group (``label``, ``view``) when
        the config asks for the frames (``keep_frames``); nothing otherwise."""
        if not self.cfg.keep_frames:
            return
        g = self.imaging.get((label, view))
        if g is None:
            g = self.imaging[(label, view)] = ImagingGroup(
                label, "fluoro" if mode in ("pulsed", "spot", "dsa") else "us", view, mode,
                [], mask_frame_numbers)
        g.frames.extend(f.without_truth() for f in frames)

    def count(self, view: str, det) -> None:
        """Tally one analyser call on ``view`` (the report's hit rate)."""
        c = self.analyser.setdefault(view, {"frames": 0, "found": 0})
        c["frames"] += 1
        c["found"] += int(bool(det.found))

    @staticmethod
    def create(cfg, proc, patient, target, level, side) -> Operator:
        cls = FluoroOperator if cfg.modality == "fluoro" else USOperator
        return cls(cfg, proc, patient, target, level, side)

    @property
    def dose(self) -> Dose:
        return Dose()

    def across(self) -> np.ndarray:
        """Unit direction across the planned path in which the needle is walked off bone
        by feel (FL: any fixed one; US: within the image plane)."""
        a = np.cross(self.plan.axis, [0.0, 0.0, 1.0])
        return a / np.linalg.norm(a)

    def hub(self, tip_guess) -> np.ndarray:
        """Where the needle's hub is when its tip is at ``tip_guess`` on the plan (the whole
        needle shows on a radiograph, not only the inserted part)."""
        return np.asarray(tip_guess, float) - self.plan.axis * self.plan.needle_length_mm

    def keep(self, rgb: np.ndarray, title: str | None = None) -> None:
        if self.cfg.record_video:
            self.video.append(rgb)
        self.last_rgb = rgb
        if title is not None:
            self.key_frames.append((title, rgb))

    def mark(self, title: str) -> None:
        """Keep the latest displayed frame as a key frame."""
        if self.last_rgb is not None and len(self.key_frames) < 12:
            self.key_frames.append((title, self.last_rgb))


class FluoroOperator(Operator):
    def __init__(self, cfg, proc, patient, target, level, side):
        super().__init__(cfg, proc, patient, target, level, side)
        from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings, named_view
        from needleguide.fluoro.carm import CArm, angles_from_beam

        # a midline procedure (caudal, interlaminar) names its views without a side
        views = proc.fluoro_view_names(side if proc.default_side is not None else None)
        if not views:
            raise UserError(f"procedure: {proc.id!r} lists no fluoroscopic views")
        work = next((v for v in views if "oblique" in v),
                    next((v for v in views if "ferguson" in v), views[0]))
        pair = [v for v in views if v != work][:2] or [work]
        self.view_names = {"working": work, "check": pair}
        self.settings = make_settings(geometry=CArmGeometry(pixels=cfg.fl_pixels),
                                      display=cfg.display)
        lvl = level or "L5-S1"
        self.carms = {v: named_view(patient, v, lvl, side=side, geometry_=self.settings.geometry)
                      for v in [work, *pair]}
        self.work = work
        self.pair = pair
        # a target in a joint cleft (SIJ, facet) is entered along the cleft's plane
        cleft = patient.tissue_name_at(self.target).endswith("_space")
        base = named_view(patient, "ap", lvl, side=side).beam if cleft else \
            self.carms[work].beam
        # the needle comes from the back: the skin side is the one the beam leaves toward
        self.plan = plan_fluoro_path(patient, target, _skin_side(base, side), proc.avoid,
                                     max_needle_mm=178.0, cleft=cleft)
        if cleft:
            # the joint-line view: the C-arm turned (obliquity and cranio-caudal tilt)
            # until the cleft projects as one lucent line, the needle going down the beam
            orbit, tilt = angles_from_beam(-self.plan.axis)
            self.carms[work] = CArm(geometry=self.settings.geometry,
                                    isocenter_mm=tuple(self.target), orbit_deg=orbit,
                                    tilt_deg=tilt, view=work)
            self.view_names["working_angles_deg"] = {"orbit": round(orbit, 1),
                                                     "tilt": round(tilt, 1)}
        # a catalogue view that repeats another (Ferguson = AP when the level is L5-S1) adds
        # nothing: the check pair is then completed with the working view
        kept = [work]
        for v in pair:
            if all(self.carms[v].beam @ self.carms[k].beam < np.cos(np.radians(5.0))
                   for k in kept):
                kept.append(v)
        self.pair = (kept[1:] + [work])[:2] if len(kept) < 3 else kept[1:3]
        self.view_names["check"] = list(self.pair)
        self.fl = Fluoroscope(patient, self.settings, seed=cfg.seed, carm=self.carms[work])

    @property
    def dose(self) -> Dose:
        return self.fl.dose_total

    def look(self, scene: Scene, guess, title: str, gate_mm: float = np.inf):
        """A pulsed shot in the working view; if the analyser does not find the needle
        there — or finds a line that cannot be this needle (direction or length unlike the
        planned shaft's projection, or a tip more than ``gate_mm`` from where the needle
        can be) — a second shot in the first check view (the C-arm swung over)."""
        for v in dict.fromkeys((self.work, self.pair[0])):
            carm = self.carms[v]
            fr = self.fl.frame(scene, "pulsed", carm)
            self.shots += 1
            self.record("needle advance, fluoroscopy shots", v, "pulsed", [fr])
            prior = im.fl_prior(carm, self.hub(guess), guess)
            det = im.analyse(fr, prior)
            self.count(v, det)
            self.keep(im.fl_overlay(fr, det, carm, self.target, f"{v}  {title}"))
            if det.found and im.fits_prior(det, prior):
                o, d = im.ray_of(carm, fr, det.tip_px)
                est = im.nearest_on_ray(o, d, guess)
                if np.linalg.norm(est - guess) <= gate_mm:
                    return est, det
            # nothing usable in this view: the C-arm swings to the next one
        return None, det

    def check(self, body, t: float) -> tuple[float, bool]:
        """Spot pair; triangulate the analyser's tips; correct the depth along the shaft."""
        scene = Scene(self.patient).with_needle(body.needle()).with_time(t)
        rays = []
        for v in self.pair:
            carm = self.carms[v]
            fr = self.fl.frame(scene.with_time(t), "spot", carm)  # the clock: dose log
            self.shots += 1
            self.record("position check, spot image", v, "spot", [fr])
            guess = self.plan.point_at(body.inserted)
            det = im.analyse(fr, im.fl_prior(carm, self.hub(guess), guess))
            self.count(f"{v} (check)", det)
            rgb = im.fl_overlay(fr, det, carm, self.target, f"{v} check")
            self.keep(rgb, f"{v}: position check (analyser: "
                      f"{'needle found' if det.found else 'not found'}, score {det.score:.1f})")
            if det.found:
                rays.append(im.ray_of(carm, fr, det.tip_px))
            t += 8.0
        if len(rays) == 2:
            est, gap = im.triangulate(*rays), im.ray_gap(*rays)
            expect = self.plan.point_at(body.inserted)
            self.confirm_info["check_estimate_mm"] = np.round(est, 2).tolist()
            self.confirm_info["check_ray_gap_mm"] = round(gap, 2)
            # two rays that do not meet, or meet far from where this needle can be, are
            # two detections of different things: the operator does not act on them
            ok = gap <= CHECK_GAP_MM and np.linalg.norm(est - expect) <= CHECK_FAR_MM
            # the depth along the shaft from the views that see the shaft side-on: a tip
            # found along an anatomical line that continues the shaft (an end-plate in AP)
            # moves along that view's shaft, so two views that disagree on the depth leave
            # it to the one that sees the shaft most nearly side-on
            s_views = [im.depth_along(r, self.plan.entry_mm, self.plan.axis) for r in rays]
            s_exp = self.plan.depth_of(expect)
            s_est = im.combine_depths(s_views, CHECK_AGREE_MM)
            ok = ok and s_est is not None and abs(s_est - s_exp) <= CHECK_FAR_MM
            self.confirm_info["check_depths_mm"] = [None if d is None else round(d[0], 2)
                                                    for d in s_views]
            s_tgt = self.plan.depth_of(self.plan.target_mm)
            dz = s_tgt - s_est if ok else 0.0
            self.confirm_info["check_used"] = bool(ok)
            if abs(dz) > 1.0:
                if dz > 0:
                    body.advance(float(min(dz, CHECK_MOVE_MM)))
                else:
                    body.withdraw(float(min(-dz, CHECK_MOVE_MM)))
                body.back_out_of_bone()
                return t + 6.0, True
        return t, False

    def confirm(self, body, t: float, events) -> tuple[float, float]:
        return confirm_fluoro(self, body, t, events)


def _skin_side(v, side: str | None) -> np.ndarray:
    """The working beam's direction pointing out of the body where the needle enters:
    posterior for a beam nearer AP than lateral (the patient prone), toward the target's
    side for a nearer-lateral beam (a lateral approach enters on the same side: RAS +x is
    the patient's right)."""
    v = np.asarray(v, float)
    if side in ("right", "left") and abs(v[0]) > abs(v[1]):
        return v if v[0] * (1.0 if side == "right" else -1.0) > 0 else -v
    return v if v[1] < 0 else -v


PROBE_TILTS_DEG = (0.0, -20.0, -10.0, 10.0, 20.0)  # heel-toe tilts tried for a cleft


def _tilted(patient, target, P2P, tilt_deg: float, x_mm: float) -> np.ndarray:
    """The probe tilted by ``tilt_deg`` about its array (lateral) axis and slid along it
    until the target lies ``x_mm`` from the footprint's centre, re-seated on the skin with
    the target in its image plane."""
    from needleguide.us.views import place_probe

    lat, beam = P2P[:3, 0], P2P[:3, 1]
    b = geometry.rotation_about_axis(lat, np.radians(tilt_deg)) @ beam
    pose, _ = place_probe(patient, np.asarray(target, float), b, lat,
                          aim=np.asarray(target, float) - lat * x_mm, max_tilt_deg=0.0)
    return np.asarray(pose, float)


def _cleft_run(patient, plan) -> float:
    """mm of the planned path, from the target outward, inside the target's cleft."""
    from needleguide.session.plan import cleft_run_mm

    _, _, labels = patient.walk_to_skin(plan.target_mm, -plan.axis)
    return cleft_run_mm(labels, int(patient.label_at(plan.target_mm[None])[0]))


class USOperator(Operator):

    def __init__(self, cfg, proc, patient, target, level, side):
        super().__init__(cfg, proc, patient, target, level, side)
        from needleguide.us import USImager, make_settings
        from needleguide.us.views import standard_view

        v = standard_view(patient, proc.us.view, level=level, side=side, probe=proc.us.probe)
        P2P = np.asarray(v.ProbeToPatient, float)
        t_p = geometry.apply(geometry.invert(P2P), self.target)
        shift = np.eye(4)
        shift[2, 3] = t_p[2]  # slide the probe until the target is in the plane
        poses = [(0.0, P2P @ shift)]
        cleft = patient.tissue_name_at(self.target).endswith("_space")
        spec = make_settings(probe=v.probe, depth_mm=v.depth_mm).spec
        half = spec.width_mm / 2 if v.probe == "linear" else \
            spec.radius_mm * np.sin(spec.sector_rad / 2)
        if cleft:
            # scan for a way into the cleft: tilt the probe (heel-toe) and slide it along
            # its array so that the target lies under either end of the footprint (a
            # needle entering just beyond that end reaches it steeply)
            for th in PROBE_TILTS_DEG:
                for x in (t_p[0], -0.7 * half, -0.35 * half, 0.35 * half, 0.7 * half):
                    if th != 0.0 or x != t_p[0]:
                        poses.append((th, _tilted(patient, self.target, P2P, th, x)))
        best = None
        for th, pose in poses:
            try:
                plan, aim = plan_in_plane_path(patient, target, pose, half, proc.avoid,
                                               cleft=cleft)
            except UserError:
                continue
            run = _cleft_run(patient, plan) if cleft else 0.0
            key = (plan.blocked_mm, -min(run, 12.0), plan.path_mm)
            if best is None or key < best[0]:
                best = (key, th, pose, plan, aim)
        if best is None:
            raise UserError("plan: no in-plane skin entry beyond the probe for this target")
        _, self.tilt_deg, self.P2P, self.plan, self.aim = best
        t_p = geometry.apply(geometry.invert(self.P2P), self.target)
        depth = float(np.clip(max(v.depth_mm, t_p[1] + 20.0), 30.0, 160.0))
        self.s = make_settings(probe=v.probe, frequency_mhz=v.frequency_mhz, depth_mm=depth,
                               focus_mm=float(np.clip(t_p[1], 5, 0.95 * depth)))
        self.imager = USImager(self.s, seed=cfg.seed)
        self.box = im.us_fov_box(self.imager.setup)  # displayed part of the frames
        self.view_names = {"working": proc.us.view, "probe": v.probe,
                           "frequency_mhz": v.frequency_mhz, "depth_mm": depth,
                           "probe_tilt_deg": self.tilt_deg}
        self.view = v

    def across(self) -> np.ndarray:
        x = self.P2P[:3, 0] - self.plan.axis * float(self.P2P[:3, 0] @ self.plan.axis)
        return x / np.linalg.norm(x)

    def render(self, scene: Scene):
        return self.imager.render(scene.with_pose("ProbeToPatient", self.P2P))

    def look(self, scene: Scene, guess, title: str, gate_mm: float = np.inf):
        fr = self.render(scene)
        self.shots += 1
        self.record("needle advance", self.proc.us.view, "bmode", [fr])
        det = im.analyse(fr, im.us_prior(fr, self.plan.entry_mm, guess))
        self.count(self.proc.us.view, det)
        self.keep(im.us_overlay(fr, det, im.us_target_px(fr, self.target),
                                f"{self.proc.us.view}  {title}", self.box))
        if not det.found:
            return None, det
        return np.asarray(det.tip_patient_mm, float), det

    def check(self, body, t: float) -> tuple[float, bool]:
        return t, False  # the depth was read from the live frames during the advance

    def confirm(self, body, t: float, events) -> tuple[float, float]:
        return confirm_us(self, body, t, events)
