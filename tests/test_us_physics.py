"""Physics checks of the B-mode simulator on small synthetic patients."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide import geometry
from needleguide.scene import Needle, Scene
from needleguide.us import USImager, make_settings
from needleguide.us.beams import axial_fwhm_mm
from needleguide.us.imager import NOISE_DB
from needleguide.us.testobjects import layered_patient, probe_on_top

SOFT_ALPHA = 0.8  # dB/cm/MHz, 'soft_tissue' in the tissue table


@pytest.fixture(scope="module")
def tissue():
    """A homogeneous soft-tissue block (muscle itself has septa: not homogeneous)."""
    return layered_patient([("soft_tissue", 100.0)], size_mm=(56.0, 60.0, 16.0),
                           spacing_mm=0.4)


def _scene(p, needle=None):
    return Scene(p, needle=needle, poses={"ProbeToPatient": probe_on_top()})


def test_speckle_envelope_snr_is_rayleigh(tissue):
    # TGC matched to the tissue: the mean echo is flat with depth, so one region suffices
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=30, output_px=128,
                      tgc_auto_db_cm_mhz=SOFT_ALPHA)
    bd = USImager(s, seed=3).beams(_scene(tissue))
    r = USImager(s, seed=3).setup.geom.r_mm
    env = bd.envelope[20:-20][:, (r > 5) & (r < 25)].astype(np.float64)
    snr = env.mean() / env.std()
    assert abs(snr - 1.91) < 0.1, snr
    # speckle is fixed in patient space: same seed same pixels, another seed differs
    bd2 = USImager(s, seed=3).beams(_scene(tissue))
    assert np.array_equal(bd.envelope, bd2.envelope)
    bd3 = USImager(s, seed=4).beams(_scene(tissue))
    assert not np.allclose(bd.envelope, bd3.envelope)


def test_speckle_moves_with_the_probe(tissue):
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=20, output_px=128)
    im = USImager(s, seed=1)
    sc = _scene(tissue)
    g = im.setup.geom
    shift = 10  # lines
    dx = float(g.origins[shift, 0] - g.origins[0, 0])
    a = im.beams(sc).envelope
    b = im.beams(sc, probe_on_top(x_mm=dx)).envelope
    # the same scatterers seen by line l + shift before and by line l after the move
    k = slice(40, -40)
    c_same = np.corrcoef(a[shift + 30:-30, k].ravel(), b[30:-30 - shift, k].ravel())[0, 1]
    c_none = np.corrcoef(a[30:-30, k].ravel(), b[30:-30, k].ravel())[0, 1]
    assert c_same > 0.8 > 0.3 > c_none


def test_attenuation_slope_with_tgc_off(tissue):
    f = 5.0
    s = make_settings(probe="linear", frequency_mhz=f, depth_mm=40, output_px=128, tgc_db=[])
    im = USImager(s, seed=0)
    bd = im.beams(_scene(tissue))
    r = im.setup.geom.r_mm
    sel = (r > 5) & (r < 35)
    mean_db = 10 * np.log10((bd.envelope[10:-10][:, sel].astype(np.float64) ** 2).mean(0))
    slope_db_per_cm = np.polyfit(r[sel] / 10.0, mean_db, 1)[0]
    expected = -2.0 * SOFT_ALPHA * f  # α·f per cm of path, round trip
    assert abs(slope_db_per_cm / expected - 1.0) < 0.10, (slope_db_per_cm, expected)


def test_below_bone_is_noise_floor():
    p = layered_patient([("skin", 2.0), ("subcutaneous_fat", 6.0), ("paraspinal_muscle", 90.0)],
                        size_mm=(56.0, 50.0, 16.0), spacing_mm=0.4, bone_top_mm=15.0)
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=40, output_px=128)
    im = USImager(s, seed=0)
    bd = im.beams(_scene(p))
    r = im.setup.geom.r_mm
    gain2 = im.setup.tgc_gain**2
    above = bd.envelope[:, (r > 10) & (r < 14)].mean()
    surface = bd.envelope[:, (r > 14.5) & (r < 15.5)].max(axis=1).mean()
    assert surface > 10 * above  # hyperechoic bone surface
    # nothing is transmitted through the bone: under it remain the receiver noise and the
    # body-wall reverberation (ghosts of the bone echo via the skin and fascia, and of the
    # superficial tissue via the face–bone path), which ends at twice the bone depth
    shadow = (r > 20) & (r < 39)  # from 5 mm under the bone surface
    noise2 = 10 ** (NOISE_DB / 10)
    power = (bd.envelope[:, shadow].astype(np.float64) ** 2).mean(axis=0) / gain2[shadow]
    expected = noise2 + bd.clutter[:, shadow].mean(axis=0)
    assert 0.8 < power.sum() / expected.sum() < 1.25
    deep = (r > 32) & (r < 39)
    assert bd.clutter[:, deep].max() < 0.01 * noise2
    ratio = bd.envelope[:, deep].mean(axis=0) / (
        np.sqrt(noise2 * gain2[deep]) * np.sqrt(np.pi) / 2)
    assert np.all(ratio < 1.3) and np.all(ratio > 0.7), ratio.min()
    # the TGC amplifies the noise with the echoes: a dark shadow, not black (70 dB range) ...
    assert bd.img8[:, shadow].mean() < 0.5 * bd.img8[:, (r > 10) & (r < 14)].mean()
    assert bd.img8[:, deep].mean() > 1.0
    # ... and black beyond the reverberation with a receiver 100 dB below the speckle
    s100 = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=40, output_px=128,
                         noise_db_re_face=-100.0)
    assert USImager(s100, seed=0).beams(_scene(p)).img8[:, deep].max() < 1.0


def test_body_wall_terms_vanish_without_fat_or_interfaces(tissue):
    """Homogeneous soft tissue with the probe pressed in (no gel, no fat, no interface): no
    phase aberration and no reverberation; only the small defocus of its 1560 m/s against
    the scanner's 1540 m/s remains."""
    from needleguide.us import body_wall

    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=30, output_px=128)
    im = USImager(s, seed=0)
    bd = im.beams(_scene(tissue))
    assert np.all(bd.clutter == 0.0)
    st = im.setup
    n = bd.strehl_map.shape
    zero = np.zeros(n, np.float32)
    aberration_only = body_wall.strehl_map(zero, zero, s.f_mhz, st.g_tx, st.g_rx, st.d_tx_mm,
                                           st.aperture_mm, st.depth_mm)
    assert np.all(aberration_only == 1.0)
    assert bd.strehl_map.min() > 0.85  # 1.3 % speed error at F/1, 7.5 MHz, 30 mm
    # with fat on the path the main lobe loses energy, more with more fat and at a higher
    # frequency: exp(−(2πfσ_t)²·(g_tx + g_rx)), σ_t = 8 ns·sqrt(fat mm)
    fat = np.full(n, 20.0, np.float32)
    s20 = body_wall.strehl_map(fat, zero, s.f_mhz, st.g_tx, st.g_rx, st.d_tx_mm,
                               st.aperture_mm, st.depth_mm)
    s40 = body_wall.strehl_map(2 * fat, zero, s.f_mhz, st.g_tx, st.g_rx, st.d_tx_mm,
                               st.aperture_mm, st.depth_mm)
    k = int(np.argmin(np.abs(st.depth_mm - 25.0)))
    sig = 2 * np.pi * s.f_mhz * 8.0e-3 * np.sqrt(20.0)
    assert np.isclose(s20[0, k], np.exp(-sig**2 * (st.g_tx[k] + st.g_rx[k])), rtol=1e-4)
    assert s40[0, k] < s20[0, k] < 1.0


def _needle_peak(angle_deg: float) -> float:
    p = layered_patient([("csf", 60.0)], size_mm=(56.0, 40.0, 16.0), spacing_mm=0.5)
    s = make_settings(probe="linear", frequency_mhz=10.0, depth_mm=30, output_px=128,
                      tgc_db=[])
    im = USImager(s, seed=0)
    a = np.deg2rad(angle_deg)
    direction = np.array([np.cos(a), -np.sin(a), 0.0])  # in plane, descending to the right
    point = np.array([0.0, -15.0, 0.0])
    tip = point + 8.0 * direction
    nd = Needle(gauge=22, length_mm=90, tip_mm=tuple(tip), direction=tuple(direction),
                inserted_length_mm=30.0)
    bd = im.beams(_scene(p, nd))
    g = im.setup.geom
    lines = np.abs(g.origins[:, 0]) < 1.0  # lines crossing the shaft near the point
    return float(bd.envelope[lines].max())


def test_needle_brightness_falls_with_insertion_angle():
    angles = [20, 30, 40, 50, 60, 70]
    peaks = [_needle_peak(a) for a in angles]
    assert all(b < a for a, b in zip(peaks, peaks[1:], strict=False)), peaks
    assert peaks[0] / peaks[-1] > 3.0  # > 10 dB between 20° and 70°


def test_axial_resolution_matches_pulse_length():
    # a soft-tissue/bone interface under anechoic fluid: its echo's envelope FWHM in depth
    p = layered_patient([("csf", 60.0)], size_mm=(56.0, 50.0, 16.0), spacing_mm=0.25,
                        bone_top_mm=20.0)
    s = make_settings(probe="linear", frequency_mhz=5.0, n_cycles=3.0, depth_mm=30,
                      output_px=400, tgc_db=[])
    im = USImager(s, seed=0)
    f = im.render(_scene(p), keep_envelope=True)
    env = f.settings["_envelope"]
    sp = f.spacing_mm[0]
    col = env[:, env.shape[1] // 2 - 20: env.shape[1] // 2 + 20].mean(axis=1)
    i = int(np.argmax(col))
    half = col[i] / 2
    lo = i
    while col[lo] > half:
        lo -= 1
    hi = i
    while col[hi] > half:
        hi += 1
    # linear interpolation of the half-maximum crossings
    x_lo = lo + (half - col[lo]) / (col[lo + 1] - col[lo])
    x_hi = hi - 1 + (col[hi - 1] - half) / (col[hi - 1] - col[hi])
    fwhm = (x_hi - x_lo) * sp
    expected = axial_fwhm_mm(s)  # n·λ/2
    assert abs(i * sp - 20.0) < 0.5
    assert abs(fwhm / expected - 1.0) < 0.10, (fwhm, expected)


def test_fluid_and_vessel_are_anechoic_with_posterior_enhancement():
    p = layered_patient([("paraspinal_muscle", 60.0)], size_mm=(56.0, 50.0, 30.0),
                        spacing_mm=0.4, vessel=(0.0, 12.0, 3.0, "carotid"))
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=30, output_px=128)
    im = USImager(s, seed=0)
    bd = im.beams(_scene(p))
    g = im.setup.geom
    r = g.r_mm
    mid = np.abs(g.origins[:, 0]) < 1.5
    side = np.abs(g.origins[:, 0]) > 8
    lumen = bd.envelope[mid][:, (r > 10.5) & (r < 13.5)].mean()
    tissue = bd.envelope[side][:, (r > 10.5) & (r < 13.5)].mean()
    assert lumen < 0.1 * tissue
    behind = bd.envelope[mid][:, (r > 17) & (r < 22)].mean()
    beside = bd.envelope[side][:, (r > 17) & (r < 22)].mean()
    assert behind > 1.2 * beside  # less attenuation through blood


def test_frame_geometry_maps_pixels_to_patient(tissue):
    s = make_settings(probe="curvilinear", depth_mm=60, output_px=128)
    P = geometry.frame_from_axes([3.0, -0.5, 2.0], [1, 0, 0], [0, -1, 0])
    f = USImager(s, seed=0).render(Scene(tissue, poses={"ProbeToPatient": P}))
    assert f.pixels.shape == (128, 128) and f.pixels.dtype == np.uint8
    # the top-centre pixel column at depth d sits d mm below the face centre
    c = (f.shape[1] - 1) / 2
    rows = np.array([0.0, 100.0])
    pts = f.pixel_to_patient(np.array([c, c]), rows)
    y0 = f.settings["ImageToProbe"][1, 3]
    assert np.allclose(pts[:, 0], 3.0, atol=0.3)
    assert np.allclose(pts[:, 1], -0.5 - (y0 + rows * f.spacing_mm[0]), atol=1e-6)
    assert geometry.is_rigid(f.ImageToPatient)


class _FluidBall:
    """A test injectate: a ball of extravascular fluid that grows with time."""

    def __init__(self, center_mm, radius_mm_per_s):
        self.c = np.asarray(center_mm, float)
        self.v = radius_mm_per_s

    def iodine_mg_ml(self, t_s):
        return None

    def fluid_fraction(self, t_s):
        from needleguide.scene import SparseField

        r = self.v * t_s
        if r <= 0:
            return None
        sp = 0.25
        n = int(np.ceil(2 * r / sp)) + 3
        aff = np.diag([sp, sp, sp, 1.0])
        aff[:3, 3] = self.c - (n - 1) / 2 * sp
        g = (np.indices((n, n, n)).reshape(3, -1).T * sp + aff[:3, 3])
        vals = (np.linalg.norm(g - self.c, axis=1) <= r).astype(np.float32).reshape(n, n, n)
        return SparseField(vals, aff)


def test_injected_fluid_is_anechoic_and_spreads(tissue):
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=30, output_px=128)
    im = USImager(s, seed=0)
    inj = _FluidBall([0.0, -12.0, 0.0], 2.0)  # 2 mm/s radius growth
    g = im.setup.geom
    r = g.r_mm
    mid = np.abs(g.origins[:, 0]) < 1.0
    core = (r > 11) & (r < 13)

    def level(t):
        sc = Scene(tissue, injectate=inj, poses={"ProbeToPatient": probe_on_top()},
                   time_s=t)
        return im.beams(sc).envelope[mid][:, core].mean()

    before, early, later = level(0.0), level(1.0), level(3.0)
    assert later < 0.1 * before  # a 6 mm pool of fluid is anechoic
    assert early < 0.1 * before  # and already at 2 mm radius
    ring = (r > 15.5) & (r < 16.5)  # 3.5–4.5 mm below the centre: inside only later
    sc1 = Scene(tissue, injectate=inj, poses={"ProbeToPatient": probe_on_top()}, time_s=1.0)
    sc3 = sc1.with_time(3.0)
    e1 = im.beams(sc1).envelope[mid][:, ring].mean()
    e3 = im.beams(sc3).envelope[mid][:, ring].mean()
    assert e3 < 0.2 * e1  # the anechoic region grows as the fluid spreads


def test_out_of_plane_needle_is_a_dot(tissue):
    s = make_settings(probe="linear", frequency_mhz=10.0, depth_mm=30, output_px=128)
    im = USImager(s, seed=0)
    # shaft along the elevation axis (patient z), crossing the plane at depth 15 mm
    nd = Needle(gauge=22, length_mm=90, tip_mm=(0.0, -15.0, 10.0), direction=(0.0, 0.0, 1.0),
                inserted_length_mm=40.0)
    bd = im.beams(_scene(tissue, nd))
    hit = np.nonzero(bd.needle_hit >= 0)[0]
    line_mm = float(im.setup.line_dx_mm[0])
    assert 0.5 <= len(hit) * line_mm <= 1.5  # a dot about the shaft's diameter (0.72 mm)
    k = int(bd.needle_hit[hit[0]])
    assert abs(im.setup.geom.r_mm[k] - 14.5) < 0.3  # face pressed 0.5 mm in
    assert bd.envelope[hit, k].max() > 10 * np.median(bd.envelope[:, k])


def test_colour_doppler_direction_and_aliasing():
    from needleguide.us.doppler import nyquist_mm_s

    # a vessel along z, imaged in a plane tilted 30° towards +z: flow along +z moves away
    # from a probe whose beam has a +z component
    def frame(v_mm_s):
        p = layered_patient([("soft_tissue", 60.0)], size_mm=(40.0, 40.0, 60.0),
                            spacing_mm=0.4, vessel=(0.0, 15.0, 3.0, "carotid"),
                            vessel_velocity_mm_s=v_mm_s)
        s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=30, output_px=128,
                          doppler=(-15.0, 15.0, 5.0, 25.0), prf_hz=4000)
        a = np.deg2rad(30)
        P = geometry.frame_from_axes([0.0, -0.5, -8.0], [1, 0, 0],
                                     [0, -np.cos(a), np.sin(a)])
        return s, USImager(s, seed=0).render(Scene(p, poses={"ProbeToPatient": P}))

    s, slow = frame(60.0)  # peak 120 mm/s, axial 60 mm/s < Nyquist (≈ 205 mm/s)
    assert nyquist_mm_s(s) > 120
    rgb = slow.pixels.astype(int)
    blue = (rgb[..., 2] > rgb[..., 0] + 40).sum()
    red = (rgb[..., 0] > rgb[..., 2] + 40).sum()
    assert blue > 50 and red == 0  # away from the probe: blue only
    _, fast = frame(300.0)  # peak 600 mm/s, axial 300 mm/s > Nyquist: wraps to red
    rgb = fast.pixels.astype(int)
    assert (rgb[..., 0] > rgb[..., 2] + 40).sum() > 20


def test_fascia_normal_from_the_labels():
    """A boundary the impedance does not show takes its normal from the labels: a flat
    boundary faces the beam, a 45° one (equal range and line steps) is 45° off it."""
    from needleguide.us.interface_normal import label_normal

    L, N = 9, 30
    flat = np.zeros((L, N), np.uint8)
    flat[:, 15:] = 2
    ga, gl = label_normal(flat, 4, 15, 2, 0.2, 0.2, 3)
    assert ga > 0 and abs(gl) < 1e-12
    tilted = np.zeros((L, N), np.uint8)
    for ln in range(L):
        tilted[ln, 11 + ln:] = 2  # the boundary moves one sample deeper per line
    ga, gl = label_normal(tilted, 4, 15, 2, 0.2, 0.2, 3)
    assert np.degrees(np.arctan2(abs(gl), ga)) == pytest.approx(45.0, abs=8.0)
