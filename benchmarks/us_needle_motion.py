"""Speed of the US needle tip from motion (issue 16 part 4), in one process, one thread:

- the motion analyser (``guidance.needle_motion.NeedleMotion.update``) against the
  single-frame analyser (``guidance.needle.detect_needle``) and the OpenCV baseline
  (Canny + HoughLinesP, ``lab.eval_needle.baseline_detect``) on the same 512² frames of
  rendered motion sequences;
- the B-mode imager with coherent speckle (4 elevation planes) and the needle's tissue
  displacement field (``Needle.tissue_drag_mm`` = 1 mm) against the same frames with the
  needle's tissue at rest (drag 0): the cost of the displacement field on a still probe
  (as in the sequences: the imager keeps what only the pose decides and redraws the
  scatterers the needle drags, docs/us.md).

    python benchmarks/us_needle_motion.py [--seeds 2000 2100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import cv2
import numba
import numpy as np


def _fps(fn, items, repeats: int) -> float:
    fn(items[0])
    t0 = time.perf_counter()
    for _ in range(repeats):
        for x in items:
            fn(x)
    return repeats * len(items) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[2000, 2100])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.guidance.needle import detect_needle
    from needleguide.guidance.needle_motion import NeedleMotion
    from needleguide.lab.eval_needle import baseline_detect
    from needleguide.lab.needle_cases import first_us_plan
    from needleguide.lab.needle_motion_cases import us_motion_sequences

    cv2.setNumThreads(1)
    numba.set_num_threads(1)
    rows = []
    for s in a.seeds:
        p = build_phantom("lumbar", bmi=26, degeneration=1, seed=s, spacing_mm=1.5)
        seq = us_motion_sequences(p, "lumbar", np.random.default_rng(s), s, 1)[0]
        frames = [c.frame.without_truth() for c in seq.cases]
        warm = NeedleMotion()  # compiled kernels loaded before the clock starts
        for f in frames[:8]:
            warm.update(f)
        t0 = time.perf_counter()
        for _ in range(a.repeats):
            nm = NeedleMotion()
            for f in frames:
                nm.update(f)
        motion = a.repeats * len(frames) / (time.perf_counter() - t0)
        single = _fps(detect_needle, frames, a.repeats)
        base = _fps(baseline_detect, frames, a.repeats)
        img, scene, nd, _ = first_us_plan(p, "lumbar", s)
        moving = dataclasses.replace(nd, tissue_drag_mm=1.0)
        still = dataclasses.replace(nd, tissue_drag_mm=0.0)
        sc = [scene.with_needle(moving).with_time(i / 15) for i in range(20)]
        sc0 = [scene.with_needle(still).with_time(i / 15) for i in range(20)]
        drag = _fps(img.render, sc, a.repeats)
        rest = _fps(img.render, sc0, a.repeats)
        rows.append((s, frames[0].shape, motion, single, base, drag, rest))
        print(f"seed {s} ({seq.params['view']}, {frames[0].shape[0]}x{frames[0].shape[1]}): "
              f"motion {motion:.0f} fps, single-frame {single:.0f} fps (motion/single "
              f"{motion / single:.2f}), baseline {base:.0f} fps; imager with the tissue "
              f"drag {drag:.0f} fps, at rest {rest:.0f} fps (ratio {drag / rest:.2f})",
              flush=True)
    m = np.array([r[2:] for r in rows])
    print(f"median over seeds: motion {np.median(m[:, 0]):.0f} fps, single-frame "
          f"{np.median(m[:, 1]):.0f}, baseline {np.median(m[:, 2]):.0f}; imager "
          f"{np.median(m[:, 3]):.0f} fps with the drag field, {np.median(m[:, 4]):.0f} without")


if __name__ == "__main__":
    main()
