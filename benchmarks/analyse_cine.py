"""Speed of reading and analysing a 120-frame ultrasound cine, after load, on one core.

Two cines: a real one (pydicom-data's ``color3d_jpeg_baseline.dcm``: SonoSite, 640×480
screens, JPEG baseline, YBR, calibrated region) and ours (``write_us_cine`` of a
120-frame in-plane needle advance, lumbar phantom seed 0: RGB screens with text). For
each: the load (``pydicom.dcmread`` + decoding every frame; pydicom and its plugins —
the peer, timed in the same process) and, after it, ours per frame: the screen reader
(imaging area, graphics blacked out; :func:`needleguide.io.frames.frames_of`) and the
analysis (:func:`needleguide.guidance.analyse.analyse_frame`: needle and levels, no
overlay). Prints frames per second of each step, of ours after load (the target:
≥ 100 fps), and the ratio of ours to the decoding alone.

    python benchmarks/analyse_cine.py [--repeats 3]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)


def our_cine(folder: Path, n: int = 120) -> Path:
    from needleguide.anatomy.phantom import build_model
    from needleguide.cli.us import advance_frames
    from needleguide.io.dicom_study import phantom_study
    from needleguide.io.dicom_us import write_us_cine
    from needleguide.us import make_settings
    from needleguide.us.views import standard_view

    patient = build_model("lumbar", bmi=24.0, seed=0, spacing_mm=1.5).to_patient()
    v = standard_view(patient, "paramedian-sagittal", level="L4-L5", side="right")
    s = make_settings(probe=v.probe, frequency_mhz=v.frequency_mhz, depth_mm=v.depth_mm,
                      focus_mm=float(np.clip(v.target_depth_mm, 5, 0.95 * v.depth_mm)))
    frames = advance_frames(patient, v, s, patient.landmark("L4.medial_branch.right"), n,
                            seed=0, rate_hz=30.0)
    return write_us_cine(folder / "US0001.dcm", phantom_study("lumbar", 24, 0), frames, 1,
                         "needle advance")


def measure(path: Path, repeats: int) -> dict:
    import pydicom

    from needleguide.guidance.analyse import analyse_frame
    from needleguide.io.frames import frames_of, read_sources

    loads, cleans, analyses = [], [], []
    found = n = 0
    for _ in range(repeats + 1):  # the first pass warms up (numba, model, caches)
        t0 = time.perf_counter()
        ds = pydicom.dcmread(path)
        _ = ds.pixel_array
        t_decode = time.perf_counter() - t0
        src = read_sources([path])[0][0]
        t1 = time.perf_counter()
        fr = list(frames_of(src))
        t2 = time.perf_counter()
        res = [analyse_frame(f.frame, draw=False)[0] for f in fr]
        t3 = time.perf_counter()
        n = len(fr)
        found = sum(r["needle"]["found"] for r in res)
        loads.append(t_decode)
        cleans.append(t2 - t1)
        analyses.append(t3 - t2)
    med = statistics.median
    return {"frames": n, "shape": tuple(src.pixels.shape[1:]), "found": found,
            "decode_fps": n / med(loads[1:]), "screen_fps": n / med(cleans[1:]),
            "analyse_fps": n / med(analyses[1:]),
            "after_load_fps": n / (med(cleans[1:]) + med(analyses[1:]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from pydicom.data import get_testdata_file

    with tempfile.TemporaryDirectory() as tmp:
        cines = {"real (color3d_jpeg_baseline)": Path(get_testdata_file(
            "color3d_jpeg_baseline.dcm")), "ours (needle advance)": our_cine(Path(tmp))}
        for name, p in cines.items():
            m = measure(p, a.repeats)
            print(f"{name}: {m['frames']} frames {m['shape']}, needle found in {m['found']}")
            print(f"  load (pydicom decode, the peer) {m['decode_fps']:7.0f} fps")
            print(f"  screen reader                    {m['screen_fps']:7.0f} fps")
            print(f"  analysis (needle + levels)       {m['analyse_fps']:7.0f} fps")
            print(f"  ours after load                  {m['after_load_fps']:7.0f} fps "
                  f"(target >= 100); ours / decode = "
                  f"{m['after_load_fps'] / m['decode_fps']:.2f}")


if __name__ == "__main__":
    main()
