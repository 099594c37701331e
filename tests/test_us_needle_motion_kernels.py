"""The analyser's numba kernels against the OpenCV/numpy steps they replace (the same
bands, statistics, moving region and scanned area, bit for bit)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide.guidance.needle_motion_bands import (
    DQ,
    MIN_COUNT,
    _level,
    band_index,
    band_stats,
)
from needleguide.guidance.needle_motion_maps import _heaviest, main_component
from needleguide.guidance.needle_motion_params import MotionParams
from needleguide.guidance.needle_motion_rays import _side_means
from needleguide.guidance.us_beams import scan_hull


def _ref_band_index(bright, edge, inside, nb, ne, depth, nd):
    sub = inside[::2, ::2]

    def lut_index(v, n):
        top = max(float(np.max(v[::2, ::2][sub])), 1e-6)
        q = cv2.convertScaleAbs(v, alpha=255.0 / top)
        cdf = np.cumsum(np.bincount(q[::2, ::2][sub], minlength=256)) / max(int(sub.sum()), 1)
        lut = np.searchsorted(np.linspace(0.0, 1.0, n + 1)[1:-1], cdf, side="right")
        return lut.astype(np.int32)[q]

    return (lut_index(bright, nb) * ne + lut_index(edge, ne)) * nd + depth[:, None]


def _ref_band_stats(d, inside, idx, n, floor):
    sub = inside[::2, ::2]
    vals, bi = d[::2, ::2][sub], idx[::2, ::2][sub]

    def half_bin(h, cnt):
        c = np.cumsum(h, axis=1)
        return np.argmax(c >= 0.5 * cnt[:, None], axis=1) * (cnt > 0)

    q = np.clip((np.sqrt(np.maximum(vals, 0.0) * 0.5) * DQ).astype(np.int64), 0, DQ - 1)
    h = np.zeros((n, DQ), np.int64)
    np.add.at(h, (bi, q), 1)
    cnt = h.sum(axis=1)
    med = (2.0 * ((half_bin(h, cnt) + 0.5) / DQ) ** 2).astype(np.float32)
    dev = np.clip((np.abs(vals - med[bi]) * (DQ / 0.5)).astype(np.int64), 0, DQ - 1)
    h2 = np.zeros((n, DQ), np.int64)
    np.add.at(h2, (bi, dev), 1)
    sig = np.maximum(1.4826 * (half_bin(h2, cnt) + 0.5) * (0.5 / DQ), floor).astype(np.float32)
    few = cnt < MIN_COUNT
    med[few], sig[few] = 0.0, 1.0
    return med, sig


def _maps(seed: int, shape=(96, 80)):
    rng = np.random.default_rng(seed)
    bright = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), 2.0)
    bright[:, : shape[1] // 5] = 0.0  # outside the scan
    edge = cv2.magnitude(cv2.Sobel(bright, cv2.CV_32F, 1, 0), cv2.Sobel(bright, cv2.CV_32F, 0, 1))
    inside = bright > 0.0
    inside[rng.random(shape) < 0.05] = False
    d = (rng.gamma(2.0, 0.1, shape) * (1 + (rng.random(shape) < 0.02) * 5)).astype(np.float32)
    depth = np.minimum(np.arange(shape[0]) * 4 // shape[0], 3).astype(np.int32)
    return bright, edge, inside, d, depth


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([(4, 2), (8, 4), (5, 3), (16, 1)]))
def test_bands_as_the_opencv_numpy_steps(seed, bands):
    nb, ne = bands
    bright, edge, inside, d, depth = _maps(seed)
    idx = band_index(bright, edge, inside, nb, ne, depth, 4)
    ref = _ref_band_index(bright, edge, inside, nb, ne, depth, 4)
    assert idx.dtype == np.int32 and np.array_equal(idx, ref)
    med, sig = band_stats(d, inside, idx, nb * ne * 4, 0.01)
    rmed, rsig = _ref_band_stats(d, inside, idx, nb * ne * 4, 0.01)
    assert np.array_equal(med, rmed) and np.array_equal(sig, rsig)


@pytest.mark.parametrize("top", [1.0, 1.7, 0.3, 1e-7])
def test_levels_round_as_convert_scale_abs(top):
    """Levels at and between the half steps (rounded half to even), beyond 255, NaN."""
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.random(3000, dtype=np.float32) * 2 * top,
                        np.arange(520, dtype=np.float32) / 2 / 255 * top,
                        np.float32([np.nan, np.inf, -top])]).astype(np.float32)
    alpha = 255.0 / max(top, 1e-6)
    ref = cv2.convertScaleAbs(v[None, :], alpha=alpha)[0]
    got = np.array([_level(x, np.float32(alpha)) for x in v])
    assert np.array_equal(got, ref)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_heaviest_component_as_bincount(seed):
    rng = np.random.default_rng(seed)
    z = cv2.GaussianBlur(rng.random((64, 64), dtype=np.float32), (0, 0), 1.5) * 6
    m = (z >= 3.0).astype(np.uint8)
    n, lab = cv2.connectedComponents(m, connectivity=8)
    if n <= 1:
        return
    ys, xs = np.nonzero(m)
    mass = np.bincount(lab[ys, xs], weights=z[ys, xs], minlength=n)
    best = int(np.argmax(mass))
    sel = lab[ys, xs] == best
    b, mb, ys2, xs2, w2 = _heaviest(lab, z, n)
    assert b == best and mb == mass[best]
    assert np.array_equal(ys2, ys[sel]) and np.array_equal(xs2, xs[sel])
    assert np.array_equal(w2, z[ys, xs][sel].astype(np.float64))
    comp = main_component(z, 0.2, MotionParams(z_on=3.0, tip_z=3.0, min_mass=0.0))
    assert comp is not None and np.array_equal(comp[0], ys[sel])


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_scanned_area_hull_from_its_boundary(seed):
    """The hull of the scan's outer boundary fills as the hull of all its pixels."""
    rng = np.random.default_rng(seed)
    lit = np.zeros((128, 128), np.uint8)
    pts = rng.integers(10, 118, (6, 2)).astype(np.int32)
    cv2.fillConvexPoly(lit, cv2.convexHull(pts), 1)
    lit[rng.random(lit.shape) < 0.2] = 0  # shadows and holes
    lit[5:8, 100:120] = 1  # screen text
    n, lab, stats, _ = cv2.connectedComponentsWithStats(lit, connectivity=8)
    scan = (lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    cv2.fillConvexPoly(scan, cv2.convexHull(cv2.findNonZero(scan)), 1)  # of all its pixels
    assert np.array_equal(scan_hull(lit.astype(bool)), scan)
    assert scan_hull(np.zeros((8, 8), bool)) is None


@pytest.mark.parametrize("n", [0, 5, 8, 78, 128, 129, 260, 1000])
def test_side_means_as_numpy(n):
    """The rays' side means as the numpy expression they replace (the sums in numpy's
    pairwise order: equal to rounding, bit for bit with numpy's present summation)."""
    rng = np.random.default_rng(n)
    c, a, b = (rng.random((3, 4, n), dtype=np.float32) for _ in range(3))
    px = rng.uniform(-5, 40, (3, 4, n)).astype(np.float32)
    py = rng.uniform(-5, 30, (3, 4, n)).astype(np.float32)
    inside = (px >= 0) & (px <= 35 - 1) & (py >= 0) & (py <= 25 - 1)
    cnt = inside.sum(axis=-1)
    val = c - 0.5 * (a + b)
    ref = np.where(cnt >= 8, (val * inside).sum(axis=-1) / np.maximum(cnt, 1), -np.inf)
    np.testing.assert_allclose(_side_means(c, a, b, px, py, 35, 25), ref, rtol=1e-6, atol=1e-7)


def test_full_frames_mean_in_reused_buffers():
    """The mean of the last n frames as numpy's, while buffers are reused; a new size."""
    from needleguide.guidance.needle_motion_maps import FullFrames

    rng = np.random.default_rng(3)
    ff = FullFrames(2)
    frames = [rng.integers(0, 256, (40, 30), dtype=np.uint8) for _ in range(5)]
    for i, p in enumerate(frames):
        g = ff.add(p)
        assert np.array_equal(g, p.astype(np.float32) * np.float32(1.0 / 255.0))
        last = [x.astype(np.float32) * np.float32(1.0 / 255.0) for x in frames[max(0, i - 1):i + 1]]
        ref = last[0] if len(last) == 1 else (last[0] + last[1]) * np.float32(0.5)
        assert np.array_equal(ff.mean(), ref) and ff.mean() is ff.mean()
    other = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    ff.add(other)
    assert ff.mean().shape == (20, 20)  # a frame of another size is not mixed in wrongly
