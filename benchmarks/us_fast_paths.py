"""The B-mode imager's vectorised stages against what they replaced, in one process
(docs/us.md, "Vectorised stages"):

- the two smoothed impedance maps (``us.smoothing.smooth_pair``, numba, all threads, one
  pass) against two ``cv2.GaussianBlur`` calls (OpenCV, ±3σ, BORDER_REFLECT_101);
- log compression: ``us.fast_log.log10_row`` over rows against ``np.log10`` (numpy's
  vector log) and a per-sample ``math.log10`` loop compiled by numba (what
  ``kernels.psf_lateral_detect`` did).

Maps of 192 lines × 663 samples (the C2–C3 needle view at 10 MHz: σ 8.8 samples along
range, 2.6 lines across) and 192 × 607 (lumbar 3.5 MHz: 4.3, 1.7).

    python benchmarks/us_fast_paths.py [--threads 2] [--repeats 200]

Prints per case the minimum and the median time (ms) of each and last a line
``ratio_peer_over_ours: …`` (median times; > 1: ours faster).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np


def _time(f, repeats: int) -> tuple[float, float]:
    f()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.min(ts) * 1e3), float(np.median(ts) * 1e3)


def _smoothing(rng, L, N, sx, sy, repeats, cv2, smooth_pair, gaussian_taps) -> list[float]:
    z, p, m = (rng.random((L, N), dtype=np.float32) for _ in range(3))
    ks = (2 * int(math.ceil(3 * sx)) + 1, 2 * int(math.ceil(3 * sy)) + 1)
    kx, ky = gaussian_taps(sx), gaussian_taps(sy)
    oa, od = np.empty_like(z), np.empty_like(z)

    def peer():
        cv2.GaussianBlur(z, ks, sigmaX=sx, sigmaY=sy)
        cv2.GaussianBlur(p - m, ks, sigmaX=sx, sigmaY=sy)

    tp = _time(peer, repeats)
    to = _time(lambda: smooth_pair(z, p, m, kx, ky, oa, od), repeats)
    err = float(np.abs(oa - cv2.GaussianBlur(z, ks, sigmaX=sx, sigmaY=sy)).max())
    print(f"smoothing {L}×{N} σ {sx}/{sy}: cv2 {tp[0]:.3f} / {tp[1]:.3f} ms, ours "
          f"{to[0]:.3f} / {to[1]:.3f} ms (min / median), max |difference| {err:.1e}")
    return [tp[1] / to[1]]


def _log10(rng, L, N, repeats, scalar_log, ours_log) -> list[float]:
    e = (10.0 ** rng.uniform(-6.0, 2.0, (L, N))).astype(np.float32)
    out = np.empty_like(e)
    tn = _time(lambda: np.log10(e, out=out), repeats)
    ts = _time(lambda: scalar_log(e, out), repeats)
    tf = _time(lambda: ours_log(e, out), repeats)
    err = float(np.abs(out - np.log10(e.astype(np.float64))).max())
    print(f"log10 {L}×{N}: numpy {tn[1]:.3f} ms, numba math.log10 {ts[1]:.3f} ms, ours "
          f"{tf[1]:.3f} ms (median), max |error| {err:.1e}")
    return [tn[1] / tf[1], ts[1] / tf[1]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=200)
    a = ap.parse_args()
    if a.repeats < 5 or not 1 <= a.threads <= (os.cpu_count() or 1):
        ap.error(f"--repeats must be ≥ 5 and --threads 1–{os.cpu_count() or 1}")
    import cv2
    import numba
    from numba import njit, prange

    import needleguide  # noqa: F401  (its threading defaults before numba starts)
    from needleguide.us.fast_log import log10_row
    from needleguide.us.smoothing import gaussian_taps, smooth_pair

    numba.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)

    @njit(parallel=True, fastmath=True)
    def ours_log(x, out):
        for i in prange(x.shape[0]):
            log10_row(x[i], out[i])

    @njit(parallel=True, fastmath=True)
    def scalar_log(x, out):
        for i in prange(x.shape[0]):
            for k in range(x.shape[1]):
                out[i, k] = math.log10(x[i, k])

    rng = np.random.default_rng(0)
    ratios = []
    for L, N, sx, sy in ((192, 663, 8.8, 2.6), (192, 607, 4.3, 1.7)):
        ratios += _smoothing(rng, L, N, sx, sy, a.repeats, cv2, smooth_pair, gaussian_taps)
        ratios += _log10(rng, L, N, a.repeats, scalar_log, ours_log)
    print(f"numba layer {numba.threading_layer()}, {a.threads} thread(s)")
    print("ratio_peer_over_ours: " + " ".join(f"{r:.2f}" for r in ratios)
          + "  (smoothing, log10 vs numpy, log10 vs scalar; C2–C3 then lumbar)")


if __name__ == "__main__":
    main()
