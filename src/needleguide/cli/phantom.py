"""``needleguide phantom``: build the parametric phantom and write labels, tables and PNGs."""

from __future__ import annotations

from pathlib import Path

import typer

from needleguide.cli._common import FORCE_HELP, SEED_HELP


def register(app: typer.Typer) -> None:
    @app.command("phantom")
    def phantom(
        region: str = typer.Option("lumbar", help="lumbar (T11–coccyx, pelvis, hips) or "
                                   "cervical (occiput–T2) or spine (C1–coccyx, ribs, lungs)"),
        bmi: float = typer.Option(24.0, help="body-mass index, kg/m² (15–60)"),
        degeneration: int = typer.Option(0, help="0 none … 3 severe (disc height loss, "
                                         "facet hypertrophy, osteophytes)"),
        seed: int = typer.Option(0, help=SEED_HELP + " (sizes and curvature)."),
        spacing: float = typer.Option(1.0, help="voxel size of the volume, mm (0.25–3)"),
        out: Path = typer.Option(..., help="output folder"),
        png_pixel: float = typer.Option(0.5, help="pixel size of the PNG slices, mm"),
        pngs: bool = typer.Option(True, help="write the PNG slices"),
        slicer: bool = typer.Option(False, "--slicer", help="also write a 3D Slicer scene: "
                                    "patient.mrml, labelmap.nrrd, tissues.ctbl, surface "
                                    "models (model_*.vtk) and landmarks.mrk.json"),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """Build the phantom; write labels.nii.gz, tissues.json, landmarks.json and PNGs."""
        run(region=region, bmi=bmi, degeneration=degeneration, seed=seed, spacing=spacing,
            out=out, png_pixel=png_pixel, pngs=pngs, force=force, slicer=slicer)


def run(region: str, bmi: float, degeneration: int, seed: int, spacing: float, out: Path,
        png_pixel: float = 0.5, pngs: bool = True, force: bool = False,
        slicer: bool = False) -> dict:
    """The command body (also callable from Python); returns timings in seconds."""
    from needleguide.anatomy.phantom import validate_params
    from needleguide.cli._common import announce_compile, console, writing
    from needleguide.errors import check_range

    validate_params(region=region, bmi=bmi, degeneration=degeneration, seed=seed,
                    spacing_mm=spacing)
    check_range("--png-pixel", png_pixel, 0.1, 5.0, " mm")
    with writing(Path(out), "phantom", force) as folder:
        announce_compile("needleguide.anatomy", about="30 s")
        times = _build_and_write(region, bmi, degeneration, seed, spacing, folder,
                                 png_pixel, pngs, slicer)
    console.print(f"wrote {out}/labels.nii.gz, tissues.json, landmarks.json, "
                  "centerlines.json, vertebrae.json, meta.json", soft_wrap=True,
                  highlight=False)
    return times


def _build_and_write(region: str, bmi: float, degeneration: int, seed: int, spacing: float,
                     folder: Path, png_pixel: float, pngs: bool, slicer: bool = False) -> dict:
    import time

    from needleguide.anatomy.nifti import save_labels
    from needleguide.anatomy.phantom import build_model
    from needleguide.atomic import write_json
    from needleguide.cli._common import console

    times: dict[str, float] = {}
    with console.status(f"building the {region} phantom…"):
        t0 = time.perf_counter()
        model = build_model(region, bmi, degeneration, seed, spacing)
        times["model_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        patient = model.to_patient()
        times["render_s"] = time.perf_counter() - t1
    times["build_s"] = times["model_s"] + times["render_s"]
    console.print(f"[bold]{region}[/bold] phantom built in {times['build_s']:.2f} s "
                  f"(model {times['model_s']:.2f} s, rendering {times['render_s']:.2f} s): "
                  f"{patient.shape[0]}×{patient.shape[1]}×{patient.shape[2]} voxels at "
                  f"{spacing:g} mm, {len(model.landmarks)} landmarks, "
                  f"{len(model.centerlines)} centerlines")
    with console.status("writing files…"):
        t2 = time.perf_counter()
        save_labels(patient.labels, patient.VoxelToPatient, folder / "labels.nii.gz")
        write_json(folder / "tissues.json", model.tissues.to_json())
        write_json(folder / "landmarks.json",
                   {k: v.to_json() for k, v in model.landmarks.items()})
        write_json(folder / "centerlines.json",
                   {k: v.to_json() for k, v in model.centerlines.items()})
        write_json(folder / "vertebrae.json",
                   {k: v.to_json() for k, v in model.vertebrae.items()})
        write_json(folder / "meta.json", {**patient.meta, "timings_s": times})
        times["write_s"] = time.perf_counter() - t2
    if slicer:
        from needleguide.io.slicer_scene import write_slicer_scene

        with console.status("writing the 3D Slicer scene…"):
            t4 = time.perf_counter()
            mrml = write_slicer_scene(folder, patient)
            times["slicer_s"] = time.perf_counter() - t4
        console.print(f"3D Slicer scene in {times['slicer_s']:.2f} s: {mrml.name} "
                      "(open it with File > Add Data or drag it onto Slicer)")
    if pngs:
        from needleguide.anatomy.phantom.preview import write_standard_pngs

        with console.status("rendering PNG slices…"):
            t3 = time.perf_counter()
            paths = write_standard_pngs(model, folder, png_pixel)
            times["png_s"] = time.perf_counter() - t3
        console.print(f"{len(paths)} PNG slices in {times['png_s']:.2f} s: "
                      + ", ".join(p.name for p in paths))
    return times
