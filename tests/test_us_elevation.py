"""Speckle through the elevation slice (issue 16 part 1): scatterers summed over a few
planes across the elevation beam profile, fixed in the patient."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.scene import Scene
from needleguide.us import USImager, make_settings
from needleguide.us import imager as I
from needleguide.us.kernels import elevation_planes
from needleguide.us.testobjects import layered_patient, probe_on_top


@pytest.fixture(scope="module")
def setup():
    p = layered_patient([("soft_tissue", 100.0)], size_mm=(40.0, 40.0, 12.0), spacing_mm=0.4)
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=30.0, focus_mm=20.0,
                      output_px=128, tgc_auto_db_cm_mhz=0.8)
    im = USImager(s, seed=0)
    r = im.setup.geom.r_mm
    return Scene(p), im, (r > 15.0) & (r < 25.0)


def _intensity(scene, im, k, dz=0.0, t=0.0):
    bd = im.beams(scene.with_time(t), probe_on_top(z_mm=dz))
    e = bd.envelope[40:-40][:, k].astype(np.float64)
    return (e * e).ravel()


def test_elevation_planes_weights_and_patient_fixed_grid():
    sig = np.array([0.2, 0.31, 0.6])
    for t in (0.0, 0.137, -3.3):
        off, w = elevation_planes(sig, t, 0.1, 4, 1.25)
        assert np.allclose((w.astype(float) ** 2).sum(axis=1), 1.0, atol=1e-6)
        assert np.all(np.abs(off) <= 2.0 * np.maximum(1.25 * sig, 0.2)[:, None] + 1e-9)
        # the planes (t + offset) lie on a grid fixed in the patient: a shift of 0.05 mm
        # keeps (almost all of) them, only the weights move
        off2, _ = elevation_planes(sig, t + 0.05, 0.1, 4, 1.25)
        shared = [np.intersect1d(np.round(t + off[i], 9), np.round(t + 0.05 + off2[i], 9)).size
                  for i in range(3)]
        assert min(shared) >= 3, shared
    off, w = elevation_planes(sig, 0.3, 0.1, 1, 1.25)
    assert off.shape == (3, 1) and np.all(off == 0) and np.all(w == 1)


def test_speckle_decorrelates_with_elevational_shift_as_theory(setup):
    scene, im, k = setup
    a = _intensity(scene, im, k)
    c = {d: np.corrcoef(a, _intensity(scene, im, k, dz=d, t=0.1))[0, 1] for d in (0.0, 0.2, 1.0)}
    # theory (σ_el ≈ 0.28–0.54 mm over 15–25 mm): ≈ 0.84 at 0.2 mm, ≈ 0.03 at 1 mm (× the
    # no-motion 0.95 of the receiver noise)
    assert c[0.0] > 0.9, c
    assert c[0.2] > 0.5, c
    assert c[1.0] < 0.2, c


def test_elevation_sum_keeps_mean_speckle_brightness(setup, monkeypatch):
    scene, im, k = setup
    thick = _intensity(scene, im, k).mean()
    monkeypatch.setattr(I, "ELEV_PLANES", 1)
    thin = _intensity(scene, im, k).mean()
    assert abs(10.0 * np.log10(thick / thin)) < 0.5, (thick, thin)


def test_reverberation_leaves_the_elevation_slice():
    """A reverberated wave has run further (wider beam past the lens focus) and, off the
    probe face, was reflected by the convex lens (a diverging mirror): the slice keeps less
    of it. Numbers from Gaussian beams: curvilinear (12 mm lens at 65 mm, 3.5 MHz) and
    linear (4 mm at 18 mm, 10 MHz) probes."""
    from needleguide.us.elevation import lens_radius_mm, reverb_slice_gains

    assert lens_radius_mm(65.0) == pytest.approx(65.0 * (1 - 1.0 / 1.54))
    z = np.arange(130) + 0.5
    g_int, g_face = reverb_slice_gains(z, 1.0, 1.54 / 3.5, 12.0, 65.0)
    assert np.allclose(g_int[:, 0], 1.0)  # no extra path: the direct beam
    assert g_face[20, 50] == pytest.approx(0.51, abs=0.01)
    assert g_int[20, 50] == pytest.approx(0.89, abs=0.01)  # a flat face
    # past the focus (2a > F) the returning beam diverges and the convex face spreads it more
    assert np.all(g_face[:, 33:] < g_int[:, 33:])
    assert np.all((g_face > 0) & (g_face <= np.sqrt(2)) & (g_int > 0) & (g_int <= np.sqrt(2)))
    z = np.arange(50) + 0.5
    g_int, g_face = reverb_slice_gains(z, 1.0, 1.54 / 10.0, 4.0, 18.0)
    assert g_face[8, 20] == pytest.approx(0.16, abs=0.01)
    assert g_int[8, 20] == pytest.approx(0.44, abs=0.01)


def test_shadow_clutter_falls_with_the_convex_face(monkeypatch):
    """Fat over muscle over a bone block: the same frame with every reverberated path kept
    whole (the former model) has more clutter under the bone; the slice's share only ever
    removes clutter power."""
    p = layered_patient([("skin", 2.0), ("subcutaneous_fat", 14.0),
                         ("paraspinal_muscle", 90.0)], size_mm=(40.0, 60.0, 16.0),
                        spacing_mm=0.4, bone_top_mm=28.0)
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=45.0, focus_mm=25.0,
                      output_px=128)
    im = USImager(s, seed=0)
    scene = Scene(p)
    pose = probe_on_top()
    bd = im.beams(scene, pose)
    r = im.setup.geom.r_mm
    under = (r > 32.0) & (r < 40.0)
    monkeypatch.setattr(im.setup, "reverb_gain_int", np.ones_like(im.setup.reverb_gain_int))
    monkeypatch.setattr(im.setup, "reverb_gain_face", np.ones_like(im.setup.reverb_gain_face))
    whole = im.beams(scene, pose)
    a, b = float(bd.clutter[:, under].mean()), float(whole.clutter[:, under].mean())
    assert 0.0 < a < 0.9 * b
