"""``needleguide analyse PATH... [--spacing MM] [--modality M] [--json] [--out DIR]``:
vertebral levels and the needle in frames on disk (docs/io.md).

PATH: files or folders — what needleguide wrote (PNG + frame JSON, its DICOM), DICOM
ultrasound / XA / RF (single- or multi-frame, compressed or not), videos and PNG images
(with ``--spacing``). Per frame (and per imaging area of an ultrasound screen) the keys
``file``, ``frame``, ``region {index, box, colour_flow}``, ``spacing_mm``,
``spacing_source``, ``levels: {anchor, vertebrae: [{name, px, confidence}]}`` and
``needle: {found, tip_px, tip_mm, confidence, tip_visible}`` (pixels of the imaging area;
tip_mm in its image plane); ``--json`` prints one object ``{"frames": [...], "notes":
[...]}``; ``--out DIR`` writes an overlay PNG per frame.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from needleguide.cli._common import FORCE_HELP, console


def register(app: typer.Typer) -> None:
    @app.command("analyse")
    def analyse_cmd(
        paths: list[Path] = typer.Argument(..., help="Files or folders: PNG with frame "
                                           "JSON, DICOM (US, XA, RF), MP4/AVI, PNG images."),
        spacing: float = typer.Option(None, "--spacing", help="Pixel spacing, mm per pixel "
                                      "at the patient (overrides the file's; needed for "
                                      "images that carry none)."),
        modality: str = typer.Option("auto", "--modality", help="auto | us | fluoro: what "
                                     "videos and plain PNGs show (auto: videos are "
                                     "ultrasound, PNGs fluoroscopy)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        out: Path = typer.Option(None, "--out", help="Folder for overlay PNGs."),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """Vertebral levels (counted from any anchor in view) and the needle, per frame."""
        import contextlib

        from needleguide.cli._common import writing
        from needleguide.guidance.analyse import analyse_frame
        from needleguide.io.frames import frames_of, read_sources

        sources, skipped = read_sources(paths, spacing, modality)
        notes = [n for s in sources for n in s.notes] + skipped
        for n in notes if not as_json else []:
            console.print(f"note: {n}", highlight=False, style="yellow")
        sink = contextlib.nullcontext(None) if out is None else \
            writing(out, "analyse", force)
        results = []
        with sink as d:
            for src in sources:
                for f in frames_of(src):
                    res, img = analyse_frame(f.frame, draw=d is not None)
                    results.append({**f.describe(), **res})
                    if d is not None:
                        _png(d / _overlay_name(f, len(src.regions) > 1,
                                               src.pixels.shape[0] > 1), img)
        if as_json:
            sys.stdout.write(json.dumps({"frames": results, "notes": notes}) + "\n")
            return
        for r in results:
            typer.echo(_line(r))
        if out is not None:
            console.print(f"overlays in {out}", highlight=False)


def _overlay_name(f, regions: bool, frames: bool) -> str:
    stem = Path(f.file).stem
    return stem + (f"_f{f.index:04d}" if frames else "") + \
        (f"_r{f.region_index}" if regions else "") + "_analysis.png"


def _png(path: Path, rgb) -> None:
    import imageio.v2 as imageio

    from needleguide.atomic import atomic_path

    with atomic_path(path) as tmp:
        imageio.imwrite(tmp, rgb, format="PNG")


def _line(r: dict) -> str:
    lv, nd = r["levels"], r["needle"]
    verts = ", ".join(f"{v['name']} ({v['px'][0]:.0f}, {v['px'][1]:.0f}) {v['confidence']:.2f}"
                      for v in lv["vertebrae"]) or "no vertebra found"
    if nd["found"]:
        needle = (f"found, tip_px ({nd['tip_px'][0]:.1f}, {nd['tip_px'][1]:.1f}), tip_mm "
                  f"({nd['tip_mm'][0]:.1f}, {nd['tip_mm'][1]:.1f}), confidence "
                  f"{nd['confidence']:.2f}, tip_visible {str(nd['tip_visible']).lower()}")
    else:
        needle = f"not found (confidence {nd['confidence']:.2f})"
    reg = r["region"]
    where = f"{r['file']} frame {r['frame']}" + (f" region {reg['index']}" if reg["index"]
                                                 else "")
    sp = r["spacing_mm"]
    return (f"{where}  [area {reg['box']}, {sp[0]:.3f}×{sp[1]:.3f} mm/px, "
            f"{r['spacing_source']}]\n  levels: anchor {lv['anchor']}; {verts}\n"
            f"  needle: {needle}")
