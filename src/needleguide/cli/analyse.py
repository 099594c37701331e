"""``needleguide analyse PATH [--spacing MM] [--json] [--out DIR]``: vertebral levels and
the needle in frames on disk (docs/guidance_levels_contrast.md, "Any view of any spine").

PATH: a frame needleguide wrote (``fluoro.png`` with its ``frame.json``, or their folder),
or any PNG or DICOM image given ``--spacing`` (mm per pixel at the patient). Per frame the
fixed keys ``levels: {anchor, vertebrae: [{name, px, confidence}]}`` and
``needle: {found, tip_px, tip_mm, confidence, tip_visible}``; ``--json`` prints one JSON
object ``{"frames": [{"file", "levels", "needle"}]}``; ``--out DIR`` writes an overlay
``<file>_analysis.png`` per frame.
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
        path: Path = typer.Argument(..., help="A PNG with its frame JSON, their folder, or "
                                    "any PNG / DICOM image (with --spacing)."),
        spacing: float = typer.Option(None, "--spacing", help="Pixel spacing, mm per pixel "
                                      "at the patient (needed for images without a frame "
                                      "JSON or DICOM spacing)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        out: Path = typer.Option(None, "--out", help="Folder for overlay PNGs."),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """Vertebral levels (counted from any anchor in view) and the needle, per frame."""
        import contextlib

        from needleguide.cli._common import writing
        from needleguide.guidance.analyse import analyse_frame
        from needleguide.io.frames import read_frames

        frames = read_frames(path, spacing)
        sink = contextlib.nullcontext(None) if out is None else \
            writing(out, "analyse", force)
        results = []
        with sink as d:
            for name, frame in frames:
                res, img = analyse_frame(frame)
                results.append({"file": name, **res})
                if d is not None:
                    _png(d / f"{Path(name.replace('#', '_')).stem}_analysis.png", img)
        if as_json:
            sys.stdout.write(json.dumps({"frames": results}) + "\n")
            return
        for r in results:
            typer.echo(_line(r))
        if out is not None:
            console.print(f"overlays in {out}", highlight=False)


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
    return f"{r['file']}\n  levels: anchor {lv['anchor']}; {verts}\n  needle: {needle}"
