"""B-mode imager speed on realistic needle views (issue 16, DESIGN.md: 512² in ≤ 10 ms on
2 cores with tissue-fixed, beam-integrated speckle), in one process:

- lumbar and cervical needle views planned as in the needle evaluation
  (``lab.needle_cases._plan_us``), phantoms at BMI 26;
- coherent speckle on (4 elevation planes) and the needle's tissue displacement field on
  (``Needle.tissue_drag_mm`` = 1 mm; the field is evaluated on every plane of every
  sample), so these are the slowest frames the trainer draws;
- 512² output, ``--threads`` numba and OpenCV threads (2: the design target), the numba
  threading layer in use printed (the package's default: OpenMP with passive waiting,
  else the work queue; ``needleguide/__init__.py``);
- ``--probe still``: the probe held still while the needle moves (the imager keeps what
  only the pose decides and redraws the scatterers the needle drags); ``moving``: the
  probe moves 0.05 mm between frames (everything drawn afresh); ``both`` (default).

    python benchmarks/us_views_fps.py [--seeds 2000 2100 2200 2701] [--frames 40]
        [--threads 2] [--rounds 3] [--probe still|moving|both]

Prints per view and probe the minimum and the median frame time over all rounds, and last
a line ``median_fps: …`` per probe (the median over the views of their median frame
rates; the still probe's last).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[2000, 2100, 2200, 2701])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--probe", choices=("still", "moving", "both"), default="both")
    a = ap.parse_args()
    if a.frames < 4 or a.rounds < 1 or not 1 <= a.threads <= (os.cpu_count() or 1):
        ap.error(f"--frames must be ≥ 4, --rounds ≥ 1 and --threads 1–{os.cpu_count() or 1}")
    import cv2
    import numba

    import needleguide  # noqa: F401  (its threading defaults before numba starts)
    from needleguide.lab.needle_cases import benchmark_us_plan

    numba.set_num_threads(a.threads)
    cv2.setNumThreads(a.threads)
    views = []
    for s in a.seeds:
        region, plan = benchmark_us_plan(s)
        if plan is None:
            continue
        img, scene, nd, par = plan
        # a jiggle: the drag flips sign every few frames, the tip moves ±1 mm
        scenes = []
        for i in range(a.frames):
            q = 1.0 if (i // 4) % 2 == 0 else -1.0
            moved = dataclasses.replace(nd.advanced(0.25 * (i % 4) * q), tissue_drag_mm=q)
            scenes.append(scene.with_needle(moved).with_time(i / 15))
        for x in scenes[:3]:
            img.render(x)  # compiled kernels and the medium before the clock starts
        views.append((s, region, par.get("view"), img, scenes))
    probes = ("moving", "still") if a.probe == "both" else (a.probe,)
    times = {(v[0], p): [] for v in views for p in probes}
    for _ in range(a.rounds):
        for s, _, _, img, scenes in views:
            P2P = np.asarray(scenes[0].poses["ProbeToPatient"], float)
            for p in probes:
                for i, x in enumerate(scenes):
                    pose = P2P.copy()
                    if p == "moving":
                        pose[:3, 3] += pose[:3, 0] * (0.05 * (i % 2))  # lateral, 50 µm
                    t = time.perf_counter()
                    img.render(x, pose)
                    times[(s, p)].append(time.perf_counter() - t)
    print(f"numba layer {numba.threading_layer()}, {a.threads} thread(s), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load average "
          f"{os.getloadavg()[0]:.2f}")
    for p in probes:
        fps = []
        for s, region, view, img, _ in views:
            t = np.array(times[(s, p)]) * 1e3
            g = img.setup.geom
            fps.append(1e3 / np.median(t))
            print(f"{p} probe: seed {s} {region} {view} ({g.kind}, {g.n_lines} lines × "
                  f"{len(g.r_mm)} samples → 512²): min {t.min():.2f} ms, median "
                  f"{np.median(t):.2f} ms ({fps[-1]:.0f} fps), p90 {np.percentile(t, 90):.2f} ms")
        print(f"median_fps ({p} probe): {np.median(fps):.0f}")
    print(f"median_fps: {np.median(fps):.0f}")


if __name__ == "__main__":
    main()
