"""Fluoroscopy physics checked against numbers: μ from xraydb, spectra, Beer–Lambert,
pinhole projection, needle tip, iodine, noise, dose, DSA."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.anatomy.patient import Patient, Vertebra
from needleguide.fluoro import CArm, CArmGeometry, Fluoroscope, FluoroSettings, dsa_sequence
from needleguide.fluoro.beam import BeamModel
from needleguide.fluoro.materials import mass_attenuation
from needleguide.fluoro.overlays import iodine_mg_cm2
from needleguide.fluoro.projector import ProjectionVolume
from needleguide.fluoro.spectra import tube_spectrum
from needleguide.scene import Needle, Scene, SparseField

GEOM = CArmGeometry(pixels=128)


def slab_patient(thickness_mm: float = 200.0, bone: bool = True, spacing: float = 2.0
                 ) -> Patient:
    """A soft-tissue slab (labels 48), ``thickness_mm`` along y, 240 mm wide, with an
    optional cortical-bone block (label 58) in the middle; one vertebra 'L4' at the origin."""
    n = (int(240 / spacing), int(thickness_mm / spacing), int(240 / spacing))
    labels = np.full(n, 48, np.uint8)
    if bone:
        c = np.array(n) // 2
        h = int(15 / spacing)
        labels[c[0] - h:c[0] + h, c[1] - h:c[1] + h, c[2] - h:c[2] + h] = 58
    aff = np.diag([spacing] * 3 + [1.0])
    aff[:3, 3] = -(np.array(n) - 1) / 2 * spacing
    v = Vertebra("L4", np.zeros(3), np.array([0, 0, 1.0]), np.array([0, 1.0, 0]), 30, 45, 35)
    return Patient(labels=labels, VoxelToPatient=aff, vertebrae={"L4": v})


# ---- materials and spectra --------------------------------------------------------------
PHYSICS_TABLE = {  # PHYSICS.md, μ/ρ cm²/g at 40, 50, 60, 80 keV
    "water": (0.268, 0.227, 0.206, 0.184),
    "soft_tissue": (0.269, 0.226, 0.205, 0.182),
    "cortical_bone": (0.666, 0.424, 0.315, 0.223),
    "iodine": (22.10, 12.32, 7.58, 3.51),
    "steel": (3.57, 1.92, 1.19, 0.59),
}


@pytest.mark.parametrize("material", sorted(PHYSICS_TABLE))
def test_mass_attenuation_reproduces_physics_table(material):
    mu = mass_attenuation(material, [40.0, 50.0, 60.0, 80.0])
    np.testing.assert_allclose(mu, PHYSICS_TABLE[material], rtol=0.02)


def test_iodine_contrast_delta_mu():
    # 300 mg I/mL adds 2.27 /cm at 60 keV (PHYSICS.md)
    assert 0.300 * mass_attenuation("iodine", 60.0) == pytest.approx(2.27, rel=0.01)


def test_spectra_match_spekpy_reference_figures():
    s = tube_spectrum(80.0, 0.0, 0.0)  # 2.5 mm Al inherent
    assert s.kerma_ugy_per_mas_1m() == pytest.approx(82.0, rel=0.01)
    assert s.hvl_mm_al() == pytest.approx(2.73, rel=0.03)
    assert s.mean_energy_kev() == pytest.approx(42.9, rel=0.01)
    s = tube_spectrum(80.0, 0.5, 0.1)  # 3 mm Al + 0.1 mm Cu
    assert s.kerma_ugy_per_mas_1m() == pytest.approx(35.8, rel=0.01)
    assert s.hvl_mm_al() == pytest.approx(4.58, rel=0.03)
    # behind 20 cm of water the mean energy is 56.8 keV (PHYSICS.md)
    e = np.maximum(s.energies_kev, 1.0)
    w = s.fluence_per_mas_1m * np.exp(-mass_attenuation("water", e) * 20.0)
    assert np.sum(w * e) / np.sum(w) == pytest.approx(56.8, rel=0.02)


def test_kvp_out_of_range_is_a_user_error():
    from needleguide.errors import UserError
    from needleguide.fluoro import make_settings

    with pytest.raises(UserError, match="kvp"):
        make_settings(kvp=150)
    with pytest.raises(UserError, match="pulse_rate"):
        make_settings(pulse_rate=10)


# ---- Beer–Lambert ---------------------------------------------------------------------------
def test_projector_line_integral_of_uniform_slab():
    mu = 0.02  # 1/mm
    n = (150, 50, 150)  # wide enough for every ray to cross the full thickness
    sp = 2.0
    aff = np.diag([sp] * 3 + [1.0])
    aff[:3, 3] = -(np.array(n) - 1) / 2 * sp
    pv = ProjectionVolume(np.full(n, mu, np.float32), aff)
    carm = CArm(geometry=GEOM)
    src, p00, dd = carm.pixel_rays()
    li = pv.project(src, p00, dd[0], dd[1], 128, 128)[..., 0]
    thick = n[1] * sp  # voxels are cells: the slab spans n × spacing
    # central ray: μ·L; an off-axis ray: μ·L / cos θ
    assert li[63:65, 63:65].mean() == pytest.approx(mu * thick, rel=2e-3)
    r, col = 70, 90
    pix = p00 + col * dd[0] + r * dd[1]
    cos = abs((pix - src) @ carm.beam) / np.linalg.norm(pix - src)
    assert li[r, col] == pytest.approx(mu * thick / cos, rel=3e-3)


def test_beam_hardening_lut_matches_spectral_sum_and_beer_lambert():
    beam = BeamModel(tube_spectrum(70.0))
    a_s = np.array([0.0, 5.0, 21.2, 40.0])
    a_b = np.array([0.0, 1.0, 3.0, 8.0])
    lut = beam.ln_transmission(a_s, a_b)
    exact = beam.ln_transmission_exact(a_s, a_b)
    np.testing.assert_allclose(lut, exact, atol=2e-3)
    # independent Beer–Lambert: 20 cm soft tissue (21.2 g/cm²) with the same weights
    w = beam.weights
    t = np.sum(w * np.exp(-mass_attenuation("soft_tissue", beam.energies) * 21.2)) / w.sum()
    only_soft = beam.ln_transmission_exact(np.array([21.2]), np.array([0.0]))[0]
    assert only_soft == pytest.approx(np.log(t), abs=1e-9)
    # beam hardening: the effective μ falls with thickness
    assert -exact[3] / 40.0 < -exact[1] / 5.0


def test_imager_log_signal_equals_polyenergetic_beer_lambert():
    p = slab_patient(200.0, bone=False)
    st = FluoroSettings(geometry=GEOM, noise=False, scatter_to_primary=0.0, table=False)
    fl = Fluoroscope(p, st, seed=0, carm=CArm(geometry=GEOM))
    exp = fl.expose(Scene(p))
    thick_cm = p.shape[1] * 2.0 / 10.0
    rho = p.tissues[48].density_g_cm3
    w = fl.beam.weights
    mu = mass_attenuation("soft_tissue", fl.beam.energies) * rho
    expected = -np.log(np.sum(w * np.exp(-mu * thick_cm)) / w.sum())
    assert exp.log_image[60:68, 60:68].mean() == pytest.approx(expected, rel=5e-3)


# ---- pinhole geometry --------------------------------------------------------------------
def test_point_projects_with_pinhole_magnification():
    carm = CArm(geometry=GEOM)  # AP: beam -y, source at +y 650 mm
    g = GEOM
    centre = (g.pixels - 1) / 2
    np.testing.assert_allclose(carm.project([0, 0, 0]), [centre, centre], atol=1e-9)
    for depth in (-100.0, 0.0, 150.0):  # y: closer to the source = larger magnification
        x = 20.0
        uv = carm.project([x, depth, 0.0])
        mag = g.sid_mm / (g.sod_mm - depth)
        # patient right (+x) is on the image left on the AP
        assert uv[0] == pytest.approx(centre - x * mag / g.pixel_mm, abs=1e-9)
        assert carm.magnification([x, depth, 0.0]) == pytest.approx(mag)
    # superior is up
    assert carm.project([0, 0, 30.0])[1] < centre


# ---- needle, iodine ------------------------------------------------------------------------
def test_needle_tip_appears_within_one_pixel_of_its_projection():
    p = slab_patient(160.0, bone=False)
    st = FluoroSettings(geometry=GEOM, noise=False, edge_enhance=0.0)
    carm = CArm(geometry=GEOM, orbit_deg=20.0, tilt_deg=-5.0)
    fl = Fluoroscope(p, st, seed=0, carm=carm)
    needle = Needle.from_entry_and_target([30.0, -90.0, 25.0], [-12.0, 5.0, -9.0],
                                          gauge=20, length_mm=127.0)
    base = fl.expose(Scene(p)).log_image
    img = fl.expose(Scene(p).with_needle(needle)).log_image
    diff = img - base
    fr = fl.frame(Scene(p).with_needle(needle))
    tip = np.array(fr.truth.tip_px)
    hub = np.array(fr.truth.shaft_px[0])
    mask = diff > 0.5 * diff.max()
    rows, cols = np.nonzero(mask)
    d = (tip - hub) / np.linalg.norm(tip - hub)
    proj = (cols - hub[0]) * d[0] + (rows - hub[1]) * d[1]
    far = np.argmax(proj)
    # the last needle pixel along the shaft, at its centre, is within 1 px of the tip
    seen = np.array([cols[far], rows[far]], float)
    assert np.dot(seen - tip, d) == pytest.approx(0.0, abs=1.0)
    assert np.linalg.norm(seen - tip) <= 1.5  # 1 px along, ≤ half a pixel across
    assert diff.max() > 0.3  # steel: a solid 20 G shaft attenuates strongly


def test_iodine_cube_areal_density():
    vals = np.full((20, 20, 20), 300.0, np.float32)  # mg I/mL
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    aff[:3, 3] = -9.5
    carm = CArm(geometry=GEOM)
    a = iodine_mg_cm2(carm, SparseField(vals, aff))
    # central ray crosses 20 mm (20 voxel cells) of 300 mg/cm³ → 600 mg/cm²
    assert a[63:65, 63:65].mean() == pytest.approx(300 * 2.0, rel=0.01)
    assert a[0, 0] == 0.0


def test_contrast_darkens_display_and_noise_is_seeded():
    p = slab_patient(160.0, bone=False)
    st = FluoroSettings(geometry=GEOM)

    class Blob:
        def iodine_mg_ml(self, t):
            v = np.full((10, 10, 10), 150.0, np.float32)
            a = np.eye(4)
            a[:3, 3] = -4.5
            return SparseField(v, a)

        def fluid_fraction(self, t):
            return None

    sc = Scene(p).with_injectate(Blob())
    f1 = Fluoroscope(p, st, seed=3).frame(sc)
    f2 = Fluoroscope(p, st, seed=3).frame(sc)
    f3 = Fluoroscope(p, st, seed=4).frame(sc)
    np.testing.assert_array_equal(f1.pixels, f2.pixels)
    assert not np.array_equal(f1.pixels, f3.pixels)
    # white-bone display: iodine is brighter than the surrounding soft tissue
    assert f1.pixels[60:68, 60:68].mean() > f1.pixels[20:28, 60:68].mean() + 0.1


def test_quantum_noise_is_poisson():
    from needleguide.fluoro.noise import poisson_counts

    for lam in (4.0, 50.0, 400.0):
        c = poisson_counts(np.full((256, 256), lam, np.float32), 1, 2)
        assert c.mean() == pytest.approx(lam, rel=0.01)
        assert c.var() == pytest.approx(lam, rel=0.03)


# ---- dose ------------------------------------------------------------------------------------
def test_dose_linear_in_time_and_ma_and_inverse_square():
    p = slab_patient(100.0, bone=False)
    fl = Fluoroscope(p, FluoroSettings(geometry=GEOM, ma=5.0), seed=0)
    one = fl.exposure_dose("pulsed")
    for _ in range(30):  # 2 s at 15 pulses/s
        fl.expose(Scene(p))
    assert fl.dose_total.fluoro_time_s == pytest.approx(2.0)
    assert fl.dose_total.air_kerma_mgy == pytest.approx(30 * one.air_kerma_mgy)
    assert fl.dose_total.dap_gy_cm2 == pytest.approx(30 * one.dap_gy_cm2)
    fl2 = Fluoroscope(p, FluoroSettings(geometry=GEOM, ma=10.0), seed=0)
    assert fl2.exposure_dose().air_kerma_mgy == pytest.approx(2 * one.air_kerma_mgy)
    assert fl.air_kerma_mgy(1.0, 500.0) == pytest.approx(4 * fl.air_kerma_mgy(1.0, 1000.0))
    # moving the isocentre away from the source (longer SOD) lowers K_ref by 1/d², DAP not
    far = CArmGeometry(pixels=128, sod_mm=800.0)
    d_near, d_far = GEOM.reference_point_mm, far.reference_point_mm
    dn = fl.exposure_dose("pulsed", CArm(geometry=GEOM))
    df = fl.exposure_dose("pulsed", CArm(geometry=far))
    assert df.air_kerma_mgy == pytest.approx(dn.air_kerma_mgy * (d_near / d_far) ** 2)
    assert df.dap_gy_cm2 == pytest.approx(dn.dap_gy_cm2)


def test_default_dose_matches_published_lumbar_tfesi_figures():
    """36 s of pulsed fluoroscopy at the manual default technique (70 kVp, 8 mA × 10 ms; the
    AEC's calibration point, see test_fluoro_aec.py) ≈ 1.0 Gy·cm² (Kim 2014: mean
    101.7 µGy·m²) and a reference air kerma within the 3.6–5.3 mGy per level (Asian Spine J
    2023)."""
    p = slab_patient(100.0, bone=False)
    fl = Fluoroscope(p, FluoroSettings(aec=False), seed=0)
    per = fl.exposure_dose("pulsed")
    n = int(36 * 15)
    dap = per.dap_gy_cm2 * n
    kref = per.air_kerma_mgy * n
    assert 0.85 <= dap <= 1.15
    assert 3.0 <= kref <= 6.0
    rate_mgy_min = per.air_kerma_mgy * 15 * 60
    assert 7.5 * 0.9 <= rate_mgy_min <= 17.0  # PHYSICS.md derived range
    assert rate_mgy_min < 88.0  # 21 CFR 1020.32


def test_dsa_subtraction_and_dose_ratio():
    p = slab_patient(160.0, bone=True)
    st = FluoroSettings(geometry=GEOM)
    fl = Fluoroscope(p, st, seed=1)

    class Late:
        def iodine_mg_ml(self, t):
            if t < 0.5:
                return None
            v = np.full((8, 8, 8), 200.0, np.float32)
            a = np.eye(4)
            a[:3, 3] = [40.0, 0.0, 40.0]
            return SparseField(v, a)

        def fluid_fraction(self, t):
            return None

    sc = Scene(p).with_injectate(Late())
    frames = dsa_sequence(fl, [sc.with_time(0.0), sc.with_time(1.0)])
    sub = frames[1].pixels
    uv = fl.carm.project([44.0, 4.0, 44.0])
    r, c = int(round(uv[1])), int(round(uv[0]))
    assert sub[r - 1:r + 2, c - 1:c + 2].mean() < 0.4  # iodine dark
    assert abs(np.median(sub[10:118, 10:118]) - 0.5) < 0.02  # anatomy cancels to grey
    # DSA dose rate / fluoroscopy dose rate within 2.3–4.2 (Maus et al.)
    ratio = (fl.exposure_dose("dsa").air_kerma_mgy * st.dsa_rate_fps) / (
        fl.exposure_dose("pulsed").air_kerma_mgy * st.pulse_rate)
    assert 2.3 <= ratio <= 4.2
    # misregistration leaves bone edges in the subtraction
    shifted = dsa_sequence(fl, [sc.with_time(0.0), sc.with_time(0.2)],
                           misregistration_px=(2.0, 0.0))[1].pixels
    still = dsa_sequence(fl, [sc.with_time(0.0), sc.with_time(0.2)])[1].pixels
    assert np.abs(shifted - 0.5).mean() > 1.2 * np.abs(still - 0.5).mean()


def test_lag_filter_restarts_with_a_new_run():
    """The recursive filter does not carry contrast into a frame of an earlier time or
    after a pause: such a frame equals a fresh fluoroscope's first pulse."""
    p = slab_patient(160.0, bone=False)
    st = FluoroSettings(geometry=GEOM, noise=False)

    class Late:
        def iodine_mg_ml(self, t):
            if t < 5.0:
                return None
            v = np.full((10, 10, 10), 15.0, np.float32)
            a = np.eye(4)
            a[:3, 3] = -4.5
            return SparseField(v, a)

        def fluid_fraction(self, t):
            return None

    sc = Scene(p).with_injectate(Late())
    fresh = Fluoroscope(p, st).frame(sc.with_time(0.5)).pixels
    fl = Fluoroscope(p, st)
    for t in (9.8, 9.9, 10.0):
        fl.frame(sc.with_time(t))
    np.testing.assert_allclose(fl.frame(sc.with_time(0.5)).pixels, fresh, atol=1e-6)
    fl.frame(sc.with_time(10.0))
    np.testing.assert_allclose(fl.frame(sc.with_time(11.0)).pixels,
                               Fluoroscope(p, st).frame(sc.with_time(11.0)).pixels, atol=1e-6)
    # within a run it still filters: the first contrast pulse shows part of the contrast
    fl.frame(sc.with_time(4.9))
    lagged = fl.frame(sc.with_time(5.0)).pixels
    full = Fluoroscope(p, st).frame(sc.with_time(5.0)).pixels
    c = slice(61, 67)
    assert fresh[c, c].mean() + 0.05 < lagged[c, c].mean() < full[c, c].mean() - 0.05
