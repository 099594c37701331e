"""The B-mode imager: Scene + ``ProbeToPatient`` + settings -> Frame.

Per frame: sample the medium along the scan lines (label slab, ``us/medium.py``, re-rendered
around the probe plane at 0.25–0.4 mm and cached while the plane stays inside it),
propagate (attenuation, reflection, transmission, shadow, reverberation), add the needle,
apply the PSF in complex baseband, add receiver noise, detect, TGC, log-compress,
scan-convert with ``cv2.remap``.
While the probe stays still (same pose, medium and patient as the frame before, no
injectate), what only the pose decides is kept (``Samples``) and only the scatterers the
needle's drag moves are drawn again (``scatterers.rescatter``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from needleguide import geometry
from needleguide.anatomy.patient import Patient
from needleguide.frame import Frame, FrameTruth
from needleguide.scene import Scene
from needleguide.us import body_wall as W
from needleguide.us import contact_kernels as CK
from needleguide.us import kernels as K
from needleguide.us import partial_volume as PV
from needleguide.us import shadow_field as SF
from needleguide.us.beams import (
    DISPLAY_TOP_DB,
    BeamSetup,
    axial_fwhm_mm,
    lateral_fwhm_mm,
    make_setup,
)
from needleguide.us.medium import Medium, build_medium, flags_lut
from needleguide.us.needle_echo import ROUGH, ROUGH_ECHOGENIC, add_needle, needle_truth_px
from needleguide.us.probe import NOISE_DB_RE_FACE, USSettings, image_to_probe
from needleguide.us.smoothing import gaussian_taps, smooth_pair
from needleguide.us.tissue_motion import NO_DRAG, advanced_along, drag_params, near_setup

SPEC_GAIN_DB = 34.0  # specular-to-diffuse calibration: K (perpendicular bone ≈ +30 dB)
THETA0_DEG = 12.0  # angular width of specular reflection from tissue interfaces
LAMBERT = 0.1  # diffuse (rough-surface) part of a bone surface's reflection (soft: /10)
R_FASCIA = 0.01  # least reflectivity of a boundary between two structures (fascia, walls)
NOISE_DB = NOISE_DB_RE_FACE  # default receiver noise re muscle speckle at the face
TOP_DB = DISPLAY_TOP_DB  # display: white at +30 dB re muscle speckle (with gain 0)
LATTICE_FRACTION = 1.0  # scatterer lattice spacing = range sample spacing × this
ELEV_STEP_MM = 0.5
# speckle through the elevation slice: scatterers summed over ELEV_PLANES planes spaced
# ELEV_PLANE_SPACING × σ of the elevation amplitude profile (kernels.elevation_planes);
# 1 = the image plane alone (no thickness: any out-of-plane move draws new speckle)
ELEV_PLANES = 4
ELEV_PLANE_SPACING = 1.25
NORMAL_SMOOTH_MM = 0.6
GEL = 255  # internal label of the coupling gel between the face and the skin
NO_SCAT = np.zeros((1, 1), np.complex64)  # (scatterers.rescatter: no field to keep)
# contact: the soft tissue under the face is displaced along each line so that the skin
# meets the face (the probe's pressure; the face may sit up to CONTACT_SEARCH_MM inside the
# undeformed skin, or the skin up to CONTACT_GAP_MM below the face), the displacement
# falling linearly to 0 at the first bone or CONTACT_DEPTH_MM (rigid below): a uniform
# strain of the layer between the face and the bone, at most ±50 %
CONTACT_SEARCH_MM = 5.0
CONTACT_GAP_MM = 8.0
CONTACT_TAPER_MM = 2.0  # … and fades to none over 2 mm beyond it (no switch under a µm move)
CONTACT_DEPTH_MM = 25.0


@lru_cache(maxsize=8)
def _table(seed: int, bits: int = K.TABLE_BITS, stream: int = K.NOISE_STREAM) -> np.ndarray:
    return K.gaussian_table(seed, bits, stream)


@lru_cache(maxsize=16)
def _setup_cached(s: USSettings) -> BeamSetup:
    return make_setup(s)


@dataclass
class BeamData:
    """Beam-domain results of one frame (for tests and diagnostics)."""

    labels: np.ndarray  # (L, N) uint8
    envelope: np.ndarray  # (L, N) float32, after TGC and gain, before log compression
    img8: np.ndarray  # (L, N) float32 0..255
    att: np.ndarray  # (L, N) two-way amplitude factor (attenuation × transmission)
    needle_hit: np.ndarray  # (L,) range sample of the needle echo or -1
    origins: np.ndarray  # (L, 3) patient
    dirs: np.ndarray  # (L, 3) patient
    strehl: np.ndarray  # (N,) mean over the lines of the main-lobe fraction below
    strehl_map: np.ndarray  # (L, N) two-way main-lobe fraction after the body wall
    clutter: np.ndarray  # (L, N) reverberation clutter power (before TGC and gain)


@dataclass
class Samples:
    """The medium along the lines for one pose (``USImager._sample``; kept while the probe
    is still)."""

    lab: np.ndarray  # (L, N) uint8 labels (GEL in front of the skin)
    zimp: np.ndarray  # (L, N) impedance (MRayl)
    zs: np.ndarray  # (L, N) impedance smoothed over NORMAL_SMOOTH_MM
    gel: np.ndarray  # (L, N) its elevational gradient (MRayl/mm)
    fl: np.ndarray  # (L, N) injectate fluid fraction
    scat: np.ndarray  # (L, N) complex64 scatterer amplitude
    frac: np.ndarray  # (L, N) interfaces between samples, or (1, 1)
    S: np.ndarray  # (L, N) two-way main-lobe fraction after the body wall
    rmap: np.ndarray  # (L, N) range in the undeformed patient (contact_map)
    el_off: np.ndarray  # (N, P) elevation planes (mm)
    el_w: np.ndarray  # (N, P) their weights
    cells: np.ndarray  # the scatterers' table
    tb: np.ndarray  # (L, N) bone's partial-volume transmission (shadow_field)
    gb: np.ndarray  # (L, N) bone's echo share (partial_volume.bone_echo_gain), or (1, 1)
    bsq: np.ndarray  # (L, N) backscatter (partial_volume.backscatter_blend), or (1, 1)


class USImager:
    """Simulated B-mode scanner. ``render(scene)`` uses ``scene.poses['ProbeToPatient']``."""

    def __init__(self, settings: USSettings, seed: int = 0):
        self.settings = settings
        self.seed = int(seed)
        self.setup = _setup_cached(settings)
        self._order = K.line_order(self.setup.geom.n_lines)  # the threads' order of lines
        self._medium: Medium | None = None
        self._medium_key: int | None = None
        self._flags: np.ndarray | None = None
        self._luts: tuple | None = None
        self._still_key: tuple | None = None  # the pose of the frame before (beams)
        self._still: Samples | None = None
        self._dragged: tuple | None = None  # (drag parameters, the scatterers they give)

    # ---- medium cache ---------------------------------------------------------------------
    def medium_for(self, patient: Patient, ProbeToPatient: np.ndarray) -> Medium:
        corners = self.setup.corners_probe
        pts = np.concatenate([np.c_[corners, np.full(4, z)] for z in (-1.5, 1.5)])
        pts_pat = geometry.apply(ProbeToPatient, pts)
        if (self._medium is None or self._medium_key != id(patient)
                or not self._medium.contains(pts_pat)):
            self._medium = build_medium(patient, ProbeToPatient, self.settings)
            self._medium_key = id(patient)
            self._flags = flags_lut(patient)
            t = patient.tissues
            lz = t.lut("speed_m_s") * t.lut("rho_kg_m3") / 1e6
            la = t.lut("alpha_db_cm_mhz")
            lb = 10.0 ** (t.lut("backscatter_db", -60.0) / 20.0)
            lz[GEL], la[GEL], lb[GEL] = K.Z_WATER, K.ALPHA_WATER, K.BS_WATER
            self._flags[GEL] = 0
            self._isbone = (self._flags & K.FLAG_BONE) != 0
            self._soft = (self._flags & (K.FLAG_BONE | K.FLAG_AIR)) == 0
            self._soft[[0, GEL]] = False  # outside the body, coupling gel
            self._isfat = np.zeros(256, np.bool_)  # GEL (255) is not fat
            self._isfat[[x.label for x in t if x.group == "fat"]] = True
            self._ismuscle = np.zeros(256, np.bool_)
            self._ismuscle[[x.label for x in t if x.group == "muscle"]] = True
            self._luts = (lz, la, lb)
            _, self._slow, self._septa = W.wall_luts(t, GEL)
            self._loss, self._blocks = SF.slab_fields(  # bone across the beam (partial volume)
                self._medium.labels, self._medium.voxel_mm, self._isbone, la, lz,
                self.settings, self.setup)
        return self._medium

    # ---- beam domain ------------------------------------------------------------------------
    def beams(self, scene: Scene, ProbeToPatient: np.ndarray | None = None) -> BeamData:
        """Simulate one frame in beam coordinates (before scan conversion)."""
        P2P = np.asarray(scene.poses["ProbeToPatient"] if ProbeToPatient is None
                         else ProbeToPatient, float)
        s, st = self.settings, self.setup
        med = self.medium_for(scene.patient, P2P)
        _, lut_a, lut_bs = self._luts
        g = st.geom
        L, N = g.n_lines, len(g.r_mm)
        o3 = np.c_[g.origins, np.zeros(L)]
        d3 = np.c_[g.directions, np.zeros(L)]
        origins = geometry.apply(P2P, o3)
        dirs = geometry.apply_vector(P2P, d3)
        elev = geometry.apply_vector(P2P, np.array([0.0, 0.0, 1.0]))
        fluid, Mf = self._fluid(scene)
        table = _table(self.seed)
        nd = scene.needle
        drag = NO_DRAG if nd is None else drag_params(nd.tip, nd.axis, nd.inserted_length_mm,
                                                      nd.tissue_drag_mm)
        # a still probe (same pose, medium and patient as the frame before, no injectate)
        # keeps what only the pose decides and redraws only the scatterers the needle moves
        key = (id(med), id(scene.patient), P2P.tobytes())
        if fluid.shape[0] > 1 or key != self._still_key:
            self._still_key = None if fluid.shape[0] > 1 else key
            self._still = self._dragged = None
            m = self._sample(med, origins, dirs, elev, fluid, Mf, drag)
        else:
            if self._still is None:
                self._still = self._sample(med, origins, dirs, elev, fluid, Mf, NO_DRAG)
            m = self._still
            if drag[7] != 0.0:  # (a still needle too: the frame before's field again)
                prev = self._dragged
                if prev is None or not np.array_equal(prev[0], drag):
                    scat = np.empty_like(m.scat)
                    # the frame before's needle, advanced along its axis: keep its field
                    shift = None if prev is None else advanced_along(prev[0], drag)
                    keep = (NO_SCAT, 0.0, 0.0) if shift is None else (prev[1], shift, prev[0][6])
                    K.rescatter(origins, dirs, m.rmap, g.r_mm, m.lab, self._ismuscle, elev,
                                m.el_off, m.el_w, drag, *near_setup(elev, drag), m.cells,
                                g.dr_mm * LATTICE_FRACTION, self.seed, m.frac.shape[0] == L,
                                self._order, m.scat, *keep, scat)
                    self._dragged = (drag, scat)
                m = dataclasses.replace(m, scat=self._dragged[1])
        lab, fl, scat, frac = m.lab, m.fl, m.scat, m.frac
        src = np.empty((L, N), np.complex64)
        att = np.empty((L, N), np.float32)
        refl = np.empty((L, N), np.float32)
        K.propagate(lab, m.zimp, m.zs, m.gel, fl, scat, self._flags, lut_a, lut_bs, s.f_mhz,
                    g.dr_mm, st.line_dx_mm, 10 ** (SPEC_GAIN_DB / 10) * st.spec_norm,
                    np.deg2rad(THETA0_DEG), LAMBERT, R_FASCIA,
                    max(1, int(round(NORMAL_SMOOTH_MM / g.dr_mm))), src, att, refl, frac,
                    m.tb, m.gb, m.bsq)
        hit = np.full(L, -1, np.int64)
        if nd is not None and nd.inserted_length_mm > 0:
            add_needle(src, att, origins, dirs, elev, g.r_mm, st.line_dx_mm, st.el_sigma_mm,
                       st.aperture_mm, nd.skin_entry_mm, nd.tip, nd.outer_diameter_mm,
                       10 ** (SPEC_GAIN_DB / 10) * st.spec_norm, hit,
                       ROUGH_ECHOGENIC if getattr(nd, "echogenic", False) else ROUGH)
        frame_no = int(round(scene.time_s * 1000))
        # the body wall crossed by each line (body_wall.py): aberration and defocus (main-lobe
        # fraction S, aperture-averaged) with their pedestal, and reverberation clutter; their
        # random phases are fixed to the scan lines (a still probe on a still body wall shows
        # still clutter); the receiver noise is drawn anew every frame
        S = m.S
        clutter = W.reverb_clutter(src, refl, lab, self._septa, att, g.dr_mm,
                                   st.reverb_half_lines, st.reverb_gain_int,
                                   st.reverb_gain_face)
        prefix = np.empty((L + 1, N), np.float32)
        W.power_prefix(src, prefix)
        K.body_wall_clutter(src, S, st.pedestal, prefix, st.halo_half, clutter, table,
                            (self.seed * 40503 + 977) & ((1 << 40) - 1))
        tmp = np.empty_like(src)
        K.psf_axial_noise(src, st.ax_kernel, table, np.float32(10 ** (s.noise_db_re_face / 20)),
                          (frame_no * 2654435761 + 12345) & ((1 << 40) - 1), tmp)
        env = np.empty((L, N), np.float32)
        img = np.empty((L, N), np.float32)
        H = (st.lat_kernels_t.shape[0] - 1) // 2
        K.psf_lateral_detect(tmp, st.lat_kernels_t, H, st.tgc_gain, env, img, TOP_DB,
                             s.dynamic_range_db)
        return BeamData(lab, env, img, att, hit, origins, dirs, S.mean(axis=0), S,
                        clutter)

    def _sample(self, med: Medium, origins: np.ndarray, dirs: np.ndarray, elev: np.ndarray,
                fluid: np.ndarray, Mf: np.ndarray, drag: np.ndarray) -> Samples:
        """The medium along the lines (``kernels.sample_medium``), its smoothed impedance
        and the body wall's main-lobe fraction, for the pose of ``origins``/``dirs``."""
        s, st = self.settings, self.setup
        g = st.geom
        L, N = g.n_lines, len(g.r_mm)
        lut_z = self._luts[0]
        lab = np.empty((L, N), np.uint8)
        zimp = np.empty((L, N), np.float32)
        zp = np.empty((L, N), np.float32)
        zm = np.empty((L, N), np.float32)
        scat = np.empty((L, N), np.complex64)
        fl = np.empty((L, N), np.float32)
        fat = np.empty((L, N), np.float32)
        rmap = self.contact_map(med, origins, dirs)
        el_off, el_w = K.elevation_planes(st.el_sigma_mm, float(np.mean(origins @ elev)),
                                          g.dr_mm * LATTICE_FRACTION, ELEV_PLANES,
                                          ELEV_PLANE_SPACING)
        cells = _table(self.seed, K.SCATTER_TABLE_BITS, K.SCATTER_STREAM)
        # where each interface lies between two samples, and boundaries between label voxels
        # (med.lookup); (1, 1) and the nearest voxel: sub-cell coherence off
        frac = np.empty((L, N) if s.speckle_subcell else (1, 1), np.float32)
        K.sample_medium(med.labels, med.lookup(s.speckle_subcell), med.M, origins, dirs, elev,
                        rmap, g.r_mm, lut_z, self._isfat, self._ismuscle, lab, zimp, zp, zm, scat,
                        cells, g.dr_mm * LATTICE_FRACTION, self.seed, fluid, Mf, fl, ELEV_STEP_MM,
                        GEL, K.Z_WATER, max(2, round(1.0 / g.dr_mm)), fat,
                        int(np.ceil(3.5 * NORMAL_SMOOTH_MM / g.dr_mm)), el_off, el_w, drag,
                        *near_setup(elev, drag), self._order, frac)
        # interface normals from impedance smoothed over ~0.6 mm (range and lateral); the
        # out-of-plane component from the smoothed impedance one step either side
        sx = max(NORMAL_SMOOTH_MM / g.dr_mm, 0.5)
        sy = max(NORMAL_SMOOTH_MM / float(np.median(st.line_dx_mm)), 0.5)
        zb, gb, bsq = zimp, PV.ALL_ECHO, PV.NO_BLEND
        if s.speckle_subcell:  # the partial volume of edges under a line; zb continuous
            zb, gb, bsq = PV.edge_shares(med.labels, med.lookup(True), med.M, origins, dirs,
                                         rmap, lab, zimp, frac, self._isbone, self._luts[2],
                                         self._soft)
        zs = np.empty((L, N), np.float32)
        gel = np.empty((L, N), np.float32)
        smooth_pair(zb, zp, zm, gaussian_taps(sx), gaussian_taps(sy), zs, gel)  # Gaussian to ±3σ
        gel *= np.float32(1.0 / (2.0 * ELEV_STEP_MM))
        slow = np.empty((L, N), np.float32)
        W.slowness_path(lab, self._slow, g.dr_mm, slow)
        S = W.strehl_frame(fat, slow, st.wall_half_lines, st.strehl_coef)
        tb = np.empty((L, N), np.float32)
        SF.line_transmission(self._loss, self._blocks, med.M, origins, dirs, rmap,
                             0.5 * med.voxel_mm, tb)
        return Samples(lab, zimp, zs, gel, fl, scat, frac, S, rmap, el_off, el_w, cells, tb,
                       gb, bsq)

    def contact_map(self, med: Medium, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """(L, N) range in the undeformed patient of every beam sample: the soft tissue
        between the face and the first bone (or ``CONTACT_DEPTH_MM``) is strained uniformly
        along each line so that the skin lies on the face (see ``CONTACT_*``); identity
        below, and on lines whose skin is not within reach. Skin and fixed depth are
        smoothed across the lines (the label map's voxel staircase; the fixed depth stays
        above the bone)."""
        r = self.setup.geom.r_mm
        L = origins.shape[0]
        dr = float(r[1] - r[0])
        n = int(np.ceil((CONTACT_SEARCH_MM + CONTACT_DEPTH_MM) / dr)) + 1
        skin = np.empty(L)
        bone = np.empty(L)
        CK.contact_ranges(med.labels, med.lookup(self.settings.speckle_subcell), med.M,
                          origins, dirs, -CONTACT_SEARCH_MM, dr, n, self._isbone,
                          max(2, round(1.0 / dr)), skin, bone)
        # a skin up to the gap below the face is pulled onto it, one CONTACT_TAPER_MM deeper
        # not at all, in part in between: a tremor's move does not switch a line at the
        # limit (under the edge of a convex face) between full contact and none
        w = np.clip((CONTACT_GAP_MM + CONTACT_TAPER_MM - np.nan_to_num(skin, nan=np.inf))
                    / CONTACT_TAPER_MM, 0.0, 1.0)
        rmap = np.empty((L, len(r)), np.float64)
        s = np.where(w > 0.0, np.nan_to_num(skin) * w, 0.0).astype(np.float32)
        b = np.minimum(np.where(np.isfinite(bone), bone, CONTACT_DEPTH_MM),
                       CONTACT_DEPTH_MM).astype(np.float32)
        b = np.maximum(b, 2.0 * dr)
        s = cv2.GaussianBlur(s[None, :], (0, 0), sigmaX=3.0, borderType=cv2.BORDER_REPLICATE)[0]
        b = cv2.erode(b[None, :], np.ones((1, 13), np.uint8), borderType=cv2.BORDER_REPLICATE)
        b = cv2.GaussianBlur(b, (0, 0), sigmaX=2.0, borderType=cv2.BORDER_REPLICATE)[0]
        s = np.clip(s, -0.5 * b, 0.5 * b).astype(np.float64)
        CK.contact_range_map(r, s, b.astype(np.float64), rmap)
        return rmap

    def _fluid(self, scene: Scene):
        empty = (np.zeros((1, 1, 1), np.float32), np.zeros((3, 4)))
        if scene.injectate is None:
            return empty
        f = scene.injectate.fluid_fraction(scene.time_s)
        if f is None or f.values.size == 0:
            return empty
        Mf = np.ascontiguousarray(np.linalg.inv(f.VoxelToPatient)[:3, :])
        vals = np.ascontiguousarray(f.values, dtype=np.float32)
        if vals.shape[0] < 2:  # keep the "absent" sentinel unambiguous
            vals = np.concatenate([vals, np.zeros_like(vals)], axis=0)
        return vals, Mf

    # ---- frame ----------------------------------------------------------------------------
    def render(self, scene: Scene, ProbeToPatient: np.ndarray | None = None,
               keep_envelope: bool = False, view: dict | None = None) -> Frame:
        """One B-mode Frame (uint8 pixels; RGB when a Doppler box is set)."""
        P2P = np.asarray(scene.poses["ProbeToPatient"] if ProbeToPatient is None
                         else ProbeToPatient, float)
        bd = self.beams(scene, P2P)
        st, s = self.setup, self.settings
        img = cv2.remap(bd.img8, st.map_x, st.map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        pixels = cv2.convertScaleAbs(img)  # rounded to uint8 (img8 lies in 0..255)
        if s.doppler is not None:
            from needleguide.us.doppler import colour_doppler

            pixels = colour_doppler(pixels, bd, scene, P2P, s, st)
        ImageToProbe = image_to_probe(st.x0_mm, st.y0_mm)
        settings = {**s.model_dump(), "frequency_mhz": s.f_mhz, "focus_mm": s.focus,
                    "axial_resolution_mm": axial_fwhm_mm(s),
                    "lateral_resolution_at_focus_mm": float(lateral_fwhm_mm(s.focus, s)),
                    "ImageToProbe": ImageToProbe, "ProbeToPatient": P2P, "seed": self.seed}
        if view:
            settings["view"] = view
        if keep_envelope:
            settings["_envelope"] = cv2.remap(bd.envelope, st.map_x, st.map_y,
                                              cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                              borderValue=0)
        truth = self._truth(scene, bd, P2P)
        return Frame(pixels=pixels, spacing_mm=(st.spacing_mm, st.spacing_mm),
                     ImageToPatient=P2P @ ImageToProbe, time_s=float(scene.time_s),
                     modality="us", settings=settings, truth=truth)

    def _truth(self, scene: Scene, bd: BeamData, P2P: np.ndarray) -> FrameTruth:
        st = self.setup
        counts = cv2.calcHist([bd.labels], [0], None, [256], [0, 256]).ravel()
        names = tuple(t.name for t in scene.patient.tissues if counts[t.label] > 0)
        nd = scene.needle
        if nd is None or nd.inserted_length_mm <= 0:
            return FrameTruth(labels_visible=names)
        inv = geometry.invert(P2P)
        tip_p = geometry.apply(inv, nd.tip)
        ent_p = geometry.apply(inv, nd.skin_entry_mm)
        half_el = float(np.median(st.el_sigma_mm)) * 2.3548 / 2
        tip_px, shaft, vis = needle_truth_px(tip_p, ent_p, st.x0_mm, st.y0_mm, st.spacing_mm,
                                             st.map_x, half_el)
        return FrameTruth(tip_px=tip_px, tip_mm=tuple(map(float, nd.tip)), shaft_px=shaft,
                          needle_visible=vis, labels_visible=names,
                          extra={"needle_lines_hit": int((bd.needle_hit >= 0).sum())})
