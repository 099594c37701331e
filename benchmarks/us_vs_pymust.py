"""Ultrasound benchmark: our B-mode frame vs PyMUST (``simus`` + DAS beamforming).

Both image a speckle phantom with a 38 mm linear array at 7.6 MHz (PyMUST's L11-5v:
128 elements, 0.3 mm pitch) over 38 mm × 40 mm, output 512 × 512. PyMUST simulates one
plane-wave RF acquisition with ``simus`` (2-D, spatial-impulse-response in the frequency
domain), converts to I/Q (``rf2iq``), beamforms with a delay-and-sum matrix (``dasmtx``)
and log-compresses (``bmode``). Its run time grows with the number of scatterers; we use
``--scatterers`` (default 1500, about 1 per mm², far fewer than the ~10 per resolution cell
of a fully developed speckle phantom, to keep its run near a minute on 2 cores: its time
grows ~22 ms per scatterer on top of ~26 s for the beamforming matrix here) — PyMUST's time
for a realistic density would be larger, so the ratio printed is conservative.

Prints our frames per second at 512² (min/median over repetitions, warm; with 2 numba
threads and with 1, since a shared machine can make 2 threads slower than 1) and ends with
``ratio_pymust_over_ours: X`` (PyMUST time per image / our best median time per frame).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def ours(reps: int, probe: str = "linear", freq: float = 7.6) -> tuple[float, float]:
    from needleguide.scene import Scene
    from needleguide.us import USImager, make_settings
    from needleguide.us.testobjects import layered_patient, probe_on_top

    p = layered_patient([("skin", 2.0), ("subcutaneous_fat", 6.0), ("paraspinal_muscle", 200)],
                        size_mm=(200.0, 200.0, 20.0) if probe == "curvilinear"
                        else (60.0, 60.0, 20.0), spacing_mm=0.4)
    depth = 40.0 if probe == "linear" else 120.0
    s = make_settings(probe=probe, frequency_mhz=freq, depth_mm=depth, output_px=512)
    im = USImager(s, seed=0)
    sc = Scene(p, poses={"ProbeToPatient": probe_on_top()})
    im.render(sc)  # compile / warm caches
    im.render(sc)
    t = []
    for i in range(reps):
        sc_i = sc.with_time(i * 0.05)
        t0 = time.perf_counter()
        f = im.render(sc_i)
        t.append(time.perf_counter() - t0)
    assert f.pixels.shape == (512, 512)
    return float(np.min(t)), float(np.median(t))


def pymust_time(n_scat: int, seed: int = 0) -> float | None:
    try:
        import pymust
    except ImportError:
        print("pymust: not installed (pip install 'needleguide[bench]'); PyMUST skipped")
        return None
    rng = np.random.default_rng(seed)
    param = pymust.getparam("L11-5v")
    param.c = 1540.0
    param.attenuation = 0.0
    xs = rng.uniform(-19e-3, 19e-3, n_scat)
    zs = rng.uniform(1e-3, 40e-3, n_scat)
    rc = rng.rayleigh(1.0, n_scat)
    t0 = time.perf_counter()
    dels = pymust.txdelay(param, 0.0)
    rf, _ = pymust.simus(xs, zs, rc, dels, param)
    iq = pymust.rf2iq(rf, param)
    x = np.linspace(-19e-3, 19e-3, 512)
    z = np.linspace(0.5e-3, 40e-3, 512)
    xi, zi = np.meshgrid(x, z)
    M = pymust.dasmtx(1j * np.array(iq.shape), xi, zi, dels, param)
    bf = (M @ iq.flatten(order="F")).reshape(xi.shape, order="F")
    img = pymust.bmode(bf, 50)
    dt = time.perf_counter() - t0
    assert img.shape == (512, 512)
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--scatterers", type=int, default=1500)
    a = ap.parse_args(argv)
    import numba

    import needleguide  # noqa: F401  (its threading defaults, before numba starts its threads)

    print(f"cores: {os.cpu_count()}, numba threads: {numba.config.NUMBA_NUM_THREADS}")

    best = np.inf
    for threads in sorted({min(2, numba.config.NUMBA_NUM_THREADS), 1}, reverse=True):
        numba.set_num_threads(threads)
        tmin, tmed = ours(a.reps)
        best = min(best, tmed)
        print(f"ours linear 7.6 MHz 38x40 mm 512x512, {threads} thread(s): min "
              f"{tmin * 1e3:.1f} ms, median {tmed * 1e3:.1f} ms -> {1 / tmed:.0f} fps "
              f"(median), {1 / tmin:.0f} fps (best)")
        cmin, cmed = ours(max(5, a.reps // 2), "curvilinear", 3.5)
        print(f"ours curvilinear 3.5 MHz 120 mm 512x512, {threads} thread(s): min "
              f"{cmin * 1e3:.1f} ms, median {cmed * 1e3:.1f} ms -> {1 / cmed:.0f} fps (median)")
    tmed = best
    print(f"fps_512: {1 / tmed:.1f}")
    tp = pymust_time(a.scatterers)
    if tp is None:
        print("ratio_pymust_over_ours: n/a (pymust not installed)")
        return 0
    print(f"pymust simus+rf2iq+dasmtx+bmode, {a.scatterers} scatterers, one plane wave: "
          f"{tp:.1f} s")
    print(f"ratio_pymust_over_ours: {tp / tmed:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
