"""How the simulated image follows a hand tremor's move on real needle views: nearest
lattice cells and label voxels (the default), scatterers blended between cells
(``speckle_subcell`` before sub-voxel boundaries), and blended scatterers with sub-voxel
boundaries (``speckle_subcell`` now, ``us/label_field.py``), in one process.

Needle views planned as in the needle evaluation (``lab.needle_cases.benchmark_us_plan``,
phantoms at BMI 26, no needle); one imager per mode, so the label slab is rendered once
(as while the probe is held). The probe is moved along its array (lateral) and along its
central beam (axial) by 5, 10, 20 and 50 µm; the echo intensity (envelope², beam
coordinates, the whole frame, receiver noise off) is correlated (Pearson) with the
unmoved frame's, and the screen pixels that change by more than ``FLICKER_GREY`` grey
levels after 10 µm laterally are counted (``flicker``: shadow columns that switch, label
voxels that flip). A real speckle pattern and a real smooth boundary keep ≈ 0.99 at 10 µm
(docs/us.md: theory on the speckle block). Last, the time of ``kernels.sample_medium``
per mode (median of ``--frames`` frames with a moving probe, ``--threads`` threads) and
its ratio to the default's.

    python benchmarks/us_tremor_coherence.py [--seeds 2000 2701] [--frames 20] [--threads 2]
        [--png docs/img/us_tremor_coherence.png]

``--png``: per view the frame (with the option), then what a 10 µm lateral move changes
on the screen in each mode (|difference| × 4, receiver noise off).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SHIFTS_MM = (0.005, 0.01, 0.02, 0.05)
MODES = ("nearest", "blended", "blended+subvoxel")
FLICKER_GREY = 16


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _imager(img, mode: str):
    from needleguide.us import USImager
    from needleguide.us.label_field import NO_MIX

    im = USImager(img.settings.model_copy(update={"speckle_subcell": mode != "nearest",
                                                  "noise_db_re_face": -120.0}), seed=img.seed)
    if mode == "blended":  # the blend without sub-voxel boundaries (before)
        build = im.medium_for

        def medium_for(patient, pose):
            med = build(patient, pose)
            med.lookup = lambda subvoxel: NO_MIX
            return med

        im.medium_for = medium_for
    return im


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[2000, 2701])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--png", default=None)
    a = ap.parse_args()
    import os

    if a.frames < 4 or not 1 <= a.threads <= (os.cpu_count() or 1):
        ap.error(f"--frames must be ≥ 4 and --threads 1–{os.cpu_count() or 1}")
    import numba

    from needleguide.lab.needle_cases import benchmark_us_plan
    from needleguide.us import kernels as K

    numba.set_num_threads(a.threads)
    timed = []
    real = K.sample_medium

    def sample_medium(*args):
        t = time.perf_counter()
        real(*args)
        timed.append(time.perf_counter() - t)

    K.sample_medium = sample_medium
    sheet: list = []
    for s in a.seeds:
        _, plan = benchmark_us_plan(s)
        if plan is None:
            continue
        img, scene, _, par = plan
        P = np.asarray(scene.poses["ProbeToPatient"], float)
        ms = {}
        panels = []
        for mode in MODES:
            im = _imager(img, mode)

            def frame(d: float, axis: int, im=im, P=P, scene=scene) -> np.ndarray:
                q = P.copy()
                q[:3, 3] += q[:3, axis] * d
                return im.beams(scene, q).envelope.astype(np.float64) ** 2

            base = frame(0.0, 0)
            moved = P.copy()
            moved[:3, 3] += moved[:3, 0] * 0.010
            f0 = im.render(scene, P).pixels.astype(int)
            f1 = im.render(scene, moved).pixels.astype(int)
            # screen pixels that flicker: > FLICKER_GREY grey levels after 10 µm laterally
            flick = int((np.abs(f1 - f0) > FLICKER_GREY).sum())
            if a.png:
                f0, f1 = f0.astype(np.uint8), f1.astype(np.uint8)
                if mode == MODES[-1]:
                    panels.insert(0, (f0, f"{par.get('view')}: frame"))
                panels.append((np.clip(4 * np.abs(f1.astype(int) - f0.astype(int)), 0, 255)
                               .astype(np.uint8), f"10 um, {mode}: |diff| x 4"))
            row = []
            for axis, name in ((0, "lateral"), (1, "axial")):
                row.append(f"{name} " + " / ".join(f"{_corr(base, frame(d, axis)):.3f}"
                                                   for d in SHIFTS_MM))
            timed.clear()
            for i in range(a.frames):
                frame(0.05 * (i % 2), 0)
            ms[mode] = 1e3 * float(np.median(timed[2:]))
            print(f"seed {s} {par.get('view')} ({img.settings.probe} "
                  f"{img.settings.f_mhz:.1f} MHz) {mode:17s} " + " | ".join(row) +
                  f" | flicker {flick} px | sample_medium {ms[mode]:.2f} ms", flush=True)
        if a.png:
            sheet.append(panels)
        print(f"  ratio_sample_medium blended+subvoxel / nearest: "
              f"{ms['blended+subvoxel'] / ms['nearest']:.2f}, / blended: "
              f"{ms['blended+subvoxel'] / ms['blended']:.2f}")
    print("shifts (µm): " + " / ".join(f"{1e3 * d:.0f}" for d in SHIFTS_MM))
    if a.png and sheet:
        _write_sheet(sheet, a.png)


def _write_sheet(sheet: list, path: str) -> None:
    """Rows of (image, caption) panels, half size, captions on top, each row cut below its
    deepest echo; written atomically."""
    import os
    import tempfile

    import cv2

    rows = []
    for panels in sheet:
        row = []
        for img, text in panels:
            small = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2),
                               interpolation=cv2.INTER_AREA)
            cv2.putText(small, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, 255, 1,
                        cv2.LINE_AA)
            row.append(small)
        r = np.hstack(row)
        used = np.flatnonzero(r.max(axis=1) > 0)  # the scanned depth (and the captions)
        rows.append(r[: used[-1] + 4] if used.size else r)
    out = np.vstack(rows)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=d)
    os.close(fd)
    cv2.imwrite(tmp, out)
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
