"""Render a thick-slice CT through the whole CT path and write a contact sheet.

The phantom's synthetic CT (scanner blur and noise) is averaged into thick slices (slice
thickness = spacing along z), written as NIfTI, imported with ``import-ct`` (HU
classification, no labels) and rendered from its Hounsfield units in AP, oblique and
lateral views, next to the phantom rendered directly from its labels.

    python scripts/thick_ct_views.py --slice-mm 2.5 --out DIR
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np


def thick_ct(out: Path, slice_mm: float, seed: int = 0) -> tuple[Path, Path]:
    """Write the phantom's synthetic CT averaged into ``slice_mm`` slices
    (out/ct_thick.nii.gz) and TotalSegmentator-style masks on that grid (out/seg/)."""
    import nibabel as nib

    from needleguide.anatomy.patient import resample_labels
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.anatomy.synthetic_ct import save_ct_nifti, synthetic_ct, totalseg_masks

    p = build_phantom("lumbar", seed=seed, spacing_mm=1.0)
    hu = synthetic_ct(p, noise_hu=15.0, blur_mm=0.6, seed=seed, cortex_mm=1.0, texture_hu=80.0)
    dz = float(p.spacing_mm[2])
    # slab average over [z, z + slice_mm): integral of the piecewise-constant 1 mm slices
    c = np.concatenate([np.zeros(hu.shape[:2] + (1,), np.float64),
                        np.cumsum(hu, axis=2, dtype=np.float64)], axis=2)
    edges = np.arange(0.0, hu.shape[2] * dz - slice_mm + 1e-6, slice_mm) / dz
    nz = len(edges)

    def integral(z):
        i = np.minimum(np.floor(z).astype(int), hu.shape[2] - 1)
        return c[:, :, i] + (z - i) * (c[:, :, i + 1] - c[:, :, i])

    thick = ((integral(edges + slice_mm / dz) - integral(edges)) / (slice_mm / dz))
    aff = p.VoxelToPatient.copy()
    aff[:3, 3] += aff[:3, 2] * (slice_mm / dz - 1) / 2.0  # slab centres
    aff[:3, 2] *= slice_mm / dz
    out.mkdir(parents=True, exist_ok=True)
    ct = save_ct_nifti(thick.astype(np.float32), aff, out / "ct_thick.nii.gz")
    shape = (hu.shape[0], hu.shape[1], nz)
    lab = resample_labels(p.labels, p.VoxelToPatient, shape, aff)
    import dataclasses

    seg = out / "seg"
    seg.mkdir(exist_ok=True)
    for name, m in totalseg_masks(dataclasses.replace(p, labels=lab, VoxelToPatient=aff,
                                                      renderer=None)).items():
        nib.save(nib.Nifti1Image(m.astype(np.uint8), aff), seg / f"{name}.nii.gz")
    return ct, seg


def render(patient, views, level: str, seed: int = 0) -> list[np.ndarray]:
    from needleguide.fluoro import Fluoroscope, make_settings, named_view
    from needleguide.scene import Scene

    s = make_settings()
    out = []
    for v in views:
        carm = named_view(patient, v, level, geometry_=s.geometry)
        fl = Fluoroscope(patient, s, seed=seed, carm=carm)
        out.append(np.clip(fl.frame(Scene(patient), "spot", carm).pixels, 0, 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slice-mm", type=float, default=2.5)
    ap.add_argument("--level", default="L4-L5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    import imageio.v2 as imageio

    from needleguide.anatomy.folder import load_patient_dir
    from needleguide.anatomy.phantom import build_phantom

    ct, seg = thick_ct(a.out, a.slice_mm, a.seed)
    folder = a.out / "imported"
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "needleguide", "import-ct", str(ct), "--labels",
                    str(seg), "--out", str(folder)], check=True)
    views = ("ap", "oblique-right", "lateral")
    rows = [render(load_patient_dir(folder), views, a.level, a.seed),
            render(build_phantom("lumbar", seed=a.seed, spacing_mm=1.0), views, a.level,
                   a.seed)]
    sheet = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    path = a.out / f"thick_ct_{a.slice_mm:g}mm_views.png"
    imageio.imwrite(path, (sheet * 255).astype(np.uint8))
    print(f"wrote {path} (top: imported {a.slice_mm:g} mm CT from HU; bottom: phantom "
          f"labels); views {', '.join(views)}")


if __name__ == "__main__":
    main()
