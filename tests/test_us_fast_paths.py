"""The imager's fast paths against what they replace: the two-map smoothing against
OpenCV's Gaussian blur, the vectorised log10 against numpy's, and the per-line span of the
needle's drag field against the per-sample test it skips."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from needleguide.us.fast_log import log10_row
from needleguide.us.scatterers import line_point
from needleguide.us.smoothing import gaussian_taps, smooth_pair
from needleguide.us.tissue_motion import drag_near, drag_params, near_setup, near_span


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 90), st.floats(0.5, 9.0), st.floats(0.5, 4.0),
       st.integers(0, 2**31 - 1))
def test_smooth_pair_is_opencvs_gaussian(L, N, sx, sy, seed):
    """Both maps as cv2.GaussianBlur (±3σ, BORDER_REFLECT_101), also where the kernel is
    longer than the map (the border folds more than once)."""
    rng = np.random.default_rng(seed)
    a, p, m = (rng.random((L, N), dtype=np.float32) for _ in range(3))
    ks = (2 * int(np.ceil(3.0 * sx)) + 1, 2 * int(np.ceil(3.0 * sy)) + 1)
    want_a = cv2.GaussianBlur(a, ks, sigmaX=sx, sigmaY=sy).reshape(L, N)
    want_d = cv2.GaussianBlur(p - m, ks, sigmaX=sx, sigmaY=sy).reshape(L, N)
    got_a, got_d = np.empty_like(a), np.empty_like(a)
    smooth_pair(a, p, m, gaussian_taps(sx), gaussian_taps(sy), got_a, got_d)
    np.testing.assert_allclose(got_a, want_a, atol=2e-6)
    np.testing.assert_allclose(got_d, want_d, atol=2e-6)


@njit(cache=True)
def _log10(x, out):
    log10_row(x, out)


def test_log10_row_accuracy():
    rng = np.random.default_rng(0)
    x = np.concatenate([10.0 ** rng.uniform(-12.0, 8.0, 100_000),
                        [1e-12, 0.5, 1.0, 2.0, np.sqrt(2.0), 3.0e38]]).astype(np.float32)
    got = np.empty_like(x)
    _log10(x, got)
    want = np.log10(x.astype(np.float64))
    assert np.max(np.abs(got - want)) < 3e-6  # ≈ 1e-4 of a grey level at 60 dB / 255
    inplace = x.copy()
    _log10(inplace, inplace)
    np.testing.assert_array_equal(inplace, got)


@njit(cache=True)
def _near_outside_span(origins, dirs, r_img, el_off, elev, p, en, c2, reach2):
    """Samples where drag_near holds but near_span excludes them (must be none), and how
    many hold at all."""
    ek_max = np.abs(el_off).max()
    bad = 0
    near_n = 0
    for l in range(origins.shape[0]):
        k0, k1 = near_span(origins, dirs, l, r_img, ek_max, reach2, p)
        for k in range(r_img.shape[0]):
            x, y, z = line_point(origins, dirs, l, r_img[k])
            if drag_near(x, y, z, ek_max, en, c2, reach2, elev, p)[0]:
                near_n += 1
                if k < k0 or k >= k1:
                    bad += 1
    return bad, near_n


@settings(max_examples=40, deadline=None)
@given(st.floats(-0.9, 0.9), st.floats(-0.9, 0.9), st.floats(-20.0, 20.0),
       st.floats(5.0, 40.0), st.floats(5.0, 60.0), st.floats(0.0, 2.0))
def test_near_span_holds_every_near_sample(ax, az, tip_x, tip_y, inserted, ek):
    """Scan lines of a linear probe (elevation +z) and a needle at any angle: every sample
    the per-sample test calls near lies inside the line's span."""
    axis = np.array([ax, 1.0, az])
    axis /= np.linalg.norm(axis)
    p = drag_params(np.array([tip_x, tip_y, 0.3]), axis, inserted, 1.0)
    elev = np.array([0.0, 0.0, 1.0])
    en, c2, reach2 = near_setup(elev, p)
    L, N = 48, 200
    origins = np.c_[np.linspace(-20.0, 20.0, L), np.zeros(L), np.zeros(L)]
    dirs = np.tile([0.0, 1.0, 0.0], (L, 1))
    r_img = np.linspace(0.0, 50.0, N)
    el_off = np.array([[-ek, ek]] * N)
    bad, near_n = _near_outside_span(origins, dirs, r_img, el_off, elev, p, en, c2, reach2)
    assert bad == 0
    if abs(tip_x) < 5.0 and tip_y > 10.0:
        assert near_n > 0  # (the needle lies in the image: the test is not empty)
