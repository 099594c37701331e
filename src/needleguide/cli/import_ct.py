"""``needleguide import-ct`` (a real CT -> Patient files) and ``needleguide synth-ct``
(the phantom's synthetic CT as NIfTI and, optionally, a DICOM series)."""

from __future__ import annotations

from pathlib import Path

import typer

from needleguide.cli._common import FORCE_HELP, SEED_HELP, console

IMPORT_FILES = ("labels.nii.gz", "tissues.json", "landmarks.json", "vertebrae.json",
                "centerlines.json", "meta.json", "ct.nii.gz", "overview.png")


def _earlier_import(out: Path) -> bool:
    """A folder written by an import-ct from before output manifests: only import-ct's
    files, its meta.json saying so."""
    import json

    names = {p.name for p in out.iterdir()}
    try:
        writer = json.loads((out / "meta.json").read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        return False
    return writer == "import-ct" and names <= set(IMPORT_FILES)


def _jsonable(o):
    return o.tolist() if hasattr(o, "tolist") else str(o)


def write_patient_files(patient, out: Path, hu=None) -> list[Path]:
    """labels.nii.gz, tissues.json, landmarks.json, vertebrae.json, centerlines.json,
    meta.json (+ ct.nii.gz) in ``out``, as ``needleguide phantom`` writes them."""
    import json

    from needleguide.anatomy.nifti import save_labels
    from needleguide.atomic import write_json, write_text

    files = [save_labels(patient.labels, patient.VoxelToPatient, out / "labels.nii.gz"),
             write_json(out / "tissues.json", patient.tissues.to_json()),
             write_json(out / "landmarks.json",
                        {k: v.to_json() for k, v in patient.landmarks.items()}),
             write_json(out / "vertebrae.json",
                        {k: v.to_json() for k, v in patient.vertebrae.items()}),
             write_json(out / "centerlines.json",
                        {k: v.to_json() for k, v in patient.centerlines.items()}),
             write_text(out / "meta.json",
                        json.dumps(patient.meta, indent=2, default=_jsonable) + "\n")]
    if hu is not None:
        from needleguide.anatomy.synthetic_ct import save_ct_nifti

        files.append(save_ct_nifti(hu, patient.VoxelToPatient, out / "ct.nii.gz"))
    return files


def overlay_png(patient, hu, path: Path, center_mm=None) -> Path:
    """Axial and mid-sagittal CT slices (window L 300 / W 1800) with the label overlay,
    radiological orientation (patient right on the left of the axial image)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from needleguide.atomic import atomic_path

    if center_mm is None:
        lo, hi = patient.bounds_mm()
        center_mm = (lo + hi) / 2
    center_mm = np.asarray(center_mm, dtype=float)
    i, j, k = np.clip(np.rint(patient.voxel_of(center_mm)).astype(int), 0,
                      np.array(patient.shape) - 1)
    lo, hi = patient.bounds_mm()
    lut = patient.tissues.color_lut()
    fig, axes = plt.subplots(1, 2, figsize=(12, 6), dpi=100)
    views = [(hu[:, :, k].T, patient.labels[:, :, k].T, (lo[0], hi[0], lo[1], hi[1]),
              f"axial z = {center_mm[2]:.0f} mm", ("R", "L", "A", "P")),
             (hu[i, :, :].T, patient.labels[i, :, :].T, (lo[1], hi[1], lo[2], hi[2]),
              f"sagittal x = {center_mm[0]:.0f} mm", ("A", "P", "S", "I"))]
    for ax, (img, lab, extent, title, (left, right, top, bottom)) in zip(axes, views,
                                                                         strict=True):
        ax.imshow(img, cmap="gray", vmin=-600, vmax=1200, origin="lower", extent=extent,
                  interpolation="nearest")
        rgba = np.zeros(lab.shape + (4,), dtype=float)
        rgba[..., :3] = lut[lab] / 255.0
        rgba[..., 3] = np.where(lab > 0, 0.35, 0.0)
        ax.imshow(rgba, origin="lower", extent=extent, interpolation="nearest")
        ax.invert_xaxis()  # patient right / anterior on the viewer's left
        ax.set_title(title)
        ax.set_xlabel("mm")
        for x, y, txt in ((0.01, 0.5, left), (0.96, 0.5, right), (0.5, 0.94, top),
                          (0.5, 0.02, bottom)):
            ax.text(x, y, txt, transform=ax.transAxes, color="yellow", fontsize=14)
    from matplotlib.patches import Patch

    shown = np.concatenate([v[1].ravel() for v in views])
    ids, counts = np.unique(shown[shown > 0], return_counts=True)
    top = ids[np.argsort(-counts)][:16]
    handles = [Patch(color=lut[t] / 255.0, label=patient.tissues[int(t)].name)
               for t in sorted(top) if int(t) in patient.tissues]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)),
                   fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def register(app: typer.Typer) -> None:
    @app.command("import-ct")
    def import_ct_cmd(
        ct: Path = typer.Argument(..., help="CT: NIfTI file, DICOM series folder or file"),
        out: Path = typer.Option(..., "--out", help="output folder"),
        labels: Path = typer.Option(None, "--labels",
                                    help="labelmap: our ids (NIfTI), TotalSegmentator "
                                         "multilabel NIfTI, or a folder of NAME.nii.gz masks"),
        label_names: str = typer.Option(None, "--label-names",
                                        help="ours | totalseg | totalseg-v1 | totalseg-v2 | "
                                             "FILE.json {id: name}; default: sidecar JSON, "
                                             "header table, else decided from the ids"),
        spacing: float = typer.Option(None, "--spacing", help="resample to MM isotropic"),
        resample_labels: bool = typer.Option(False, "--resample-labels",
                                             help="allow a labelmap on another grid than "
                                                  "the CT (resampled nearest)"),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """Import a CT (+ optional labelmap) and write labels, tissues, landmarks, PNG."""
        import dataclasses
        import logging

        from needleguide.anatomy.importer import import_ct
        from needleguide.cli._common import writing

        lg = logging.getLogger("needleguide.anatomy.importer")
        if not any(isinstance(h, logging.NullHandler) for h in lg.handlers):
            lg.addHandler(logging.NullHandler())  # the warning below is the one line
        # the folder is checked (and locked) before the (long) import; nothing is written
        # on an error, and the files appear together
        with writing(out, "import-ct", force, legacy=_earlier_import) as d:
            p = import_ct(ct, labels, spacing_mm=spacing, label_names=label_names,
                          resample_labels=resample_labels)
            p = dataclasses.replace(p, meta={**p.meta, "command": "import-ct"})
            center = None
            if p.vertebrae:
                center = next(iter(p.vertebrae.values())).center_mm
                for name in ("L4", "L3", "L5", "C6"):
                    if name in p.vertebrae:
                        center = p.vertebrae[name].center_mm
                        break
            write_patient_files(p, d, p.hu)
            overlay_png(p, p.hu, d / "overview.png", center)
        unk = p.meta.get("unknown_structures") or {}
        msg = f"imported {p.shape} at {p.spacing_mm.round(3).tolist()} mm -> {out}"
        if p.meta.get("label_table_from") == "detected":
            msg += f"; label ids read as {p.meta['label_table']} (decided from ids and HU)"
        if p.vertebrae:
            msg += f"; vertebrae {', '.join(p.vertebrae)}"
        console.print(msg, soft_wrap=True, markup=False, highlight=False)
        if unk:
            console.print(f"warning: {len(unk)} unknown structure(s) -> soft_tissue "
                          f"({p.meta['unknown_voxels']} voxels): {', '.join(sorted(unk))}",
                          soft_wrap=True, markup=False, highlight=False)

    @app.command("synth-ct")
    def synth_ct_cmd(
        out: Path = typer.Option(..., "--out", help="output folder"),
        region: str = typer.Option("lumbar", "--region", help="lumbar | cervical"),
        bmi: float = typer.Option(24.0, "--bmi", help="body-mass index, kg/m² (15-60)"),
        seed: int = typer.Option(0, "--seed", help=SEED_HELP + " (phantom and noise)."),
        spacing: float = typer.Option(1.0, "--spacing", help="voxel size, mm (0.25-3)"),
        noise: float = typer.Option(15.0, "--noise", help="noise standard deviation, HU"),
        blur: float = typer.Option(0.0, "--blur", help="point-spread sigma, mm (0-10)"),
        dicom: bool = typer.Option(False, "--dicom", help="also write a DICOM series"),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """Render the phantom's synthetic CT: ct.nii.gz (+ dicom/) and its true labels."""
        from needleguide.anatomy.phantom import build_model
        from needleguide.anatomy.synthetic_ct import save_ct_dicom, synthetic_ct
        from needleguide.cli._common import writing
        from needleguide.errors import check_range

        check_range("--noise", noise, 0.0, 500.0, " HU")
        check_range("--blur", blur, 0.0, 10.0, " mm")
        model = build_model(region=region, bmi=bmi, seed=seed, spacing_mm=spacing)
        with writing(out, "synth-ct", force) as d:
            p = model.to_patient()
            hu = synthetic_ct(p, noise_hu=noise, blur_mm=blur, seed=seed)
            write_patient_files(p, d, hu)
            if dicom:
                save_ct_dicom(hu, p.VoxelToPatient, d / "dicom",
                              series_description=f"needleguide {region} phantom seed {seed}",
                              uid_seed=f"{region}-{bmi}-{seed}-{spacing}")
        console.print(f"synthetic CT {p.shape} at {spacing} mm -> {out}"
                      + (" (+ dicom/)" if dicom else ""), soft_wrap=True, highlight=False)
