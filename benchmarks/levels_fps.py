"""Speed of the whole-spine level labeller at 512² on one core, beside the lumbar
baseline it replaces, on real rendered frames.

Frames: the whole-spine phantom (seed 0, 2 mm) seen AP, lateral and 30° oblique at C5,
T7, T12 and L3 (12 frames, 512² detector, automatic exposure, spot). Each labeller runs
over all of them ``--repeats`` times after one warm-up pass (numba kernels compiled,
model loaded); one thread for OpenCV, numba and BLAS. Prints the median frames per
second of ``levels_spine.label_spine`` and of ``levels.label_levels`` and their ratio.

    python benchmarks/levels_fps.py [--repeats 5]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402


def frames(pixels: int = 512) -> list:
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings, named_view
    from needleguide.scene import Scene

    p = build_phantom("spine", seed=0, spacing_mm=2.0)
    s = make_settings(geometry=CArmGeometry(pixels=pixels))
    fl = Fluoroscope(p, s, seed=0)
    out = []
    for level in ("C5", "T7", "T12", "L3"):
        for view in ("ap", "lateral", "oblique-right"):
            carm = named_view(p, view, level, geometry_=s.geometry)
            out.append(fl.frame(Scene(p), "spot", carm).without_truth())
    return out


def fps(fn, fs: list, repeats: int) -> float:
    for f in fs:
        fn(f)
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for f in fs:
            fn(f)
        runs.append(len(fs) / (time.perf_counter() - t))
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    import cv2

    cv2.setNumThreads(1)
    from needleguide.guidance.levels import label_levels
    from needleguide.guidance.levels_spine import label_spine

    fs = frames()
    ours = fps(label_spine, fs, a.repeats)
    base = fps(label_levels, fs, a.repeats)
    print(f"{len(fs)} frames at {fs[0].shape[0]}², one thread, median of {a.repeats}:")
    print(f"  label_spine (whole spine, any anchor)  {ours:7.1f} fps  "
          f"({1000 / ours:.1f} ms/frame)")
    print(f"  label_levels (lumbar baseline)          {base:7.1f} fps  "
          f"({1000 / base:.1f} ms/frame)")
    print(f"  ratio ours / baseline                   {ours / base:7.2f}")


if __name__ == "__main__":
    main()
