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
