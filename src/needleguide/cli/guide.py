"""``needleguide guide --connect HOST:PORT``: needle guidance for the images an
OpenIGTLink server streams (PLUS with a real scanner, ``needleguide serve``): sends back
TRANSFORM ``NeedleTipDetectedToReference`` and STRING ``NeedleGuidance`` (JSON) per
analysed image (docs/igtl.md); runs until Ctrl-C / SIGTERM or ``--max-frames``."""

from __future__ import annotations

import json
import sys

import typer

from needleguide.cli._common import console

SPACING_RANGE_MM = (0.001, 20.0)
MODALITIES = ("auto", "us", "fluoro")


def parse_connect(text: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT``, else a UserError naming --connect."""
    from needleguide.errors import UserError

    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"--connect: expected HOST:PORT with a port in [1, 65535], got "
                        f"{text!r} (e.g. 127.0.0.1:18944)")
    return host, int(port)


def _line(r: dict) -> str:
    nd = r["needle"]
    if not nd["found"]:
        return f"{r['image']}: needle not found (confidence {nd['confidence']:.2f})"
    w = r["tip_world_mm"]
    return (f"{r['image']}: needle tip ({w[0]:.1f}, {w[1]:.1f}, {w[2]:.1f}) mm, px "
            f"({nd['tip_px'][0]:.0f}, {nd['tip_px'][1]:.0f}), confidence "
            f"{nd['confidence']:.2f}, {r['analysis_ms']:.0f} ms")


def register(app: typer.Typer) -> None:
    @app.command("guide")
    def guide_cmd(
        connect: str = typer.Option(..., "--connect", help="OpenIGTLink server, HOST:PORT "
                                    "(PLUS: 127.0.0.1:18944)."),
        spacing: float = typer.Option(None, "--spacing", help="Pixel spacing, mm per pixel "
                                      "(overrides the IMAGE matrix's; for uncalibrated "
                                      "streams)."),
        modality: str = typer.Option("auto", "--modality", help="auto | us | fluoro: used "
                                     "when the IMAGE metadata does not say (auto: "
                                     "ultrasound)."),
        device: str = typer.Option(None, "--device", help="Analyse only IMAGE messages of "
                                   "this device name (default: any)."),
        max_frames: int = typer.Option(None, "--max-frames", help="Stop after N analysed "
                                       "images."),
        as_json: bool = typer.Option(False, "--json", help="One JSON line per image on "
                                     "stdout."),
    ) -> None:
        """Detect the needle in a live OpenIGTLink image stream and send the tip back."""
        from needleguide.errors import UserError, check_choice, check_range
        from needleguide.io.igtl_guide import run_guide

        host, port = parse_connect(connect)
        if spacing is not None:
            check_range("--spacing", spacing, *SPACING_RANGE_MM, " mm")
        check_choice("--modality", modality, MODALITIES)
        if max_frames is not None and max_frames < 1:
            raise UserError(f"--max-frames: {max_frames} is outside the allowed range [1, ∞)")

        def show(r: dict) -> None:
            if as_json:
                sys.stdout.write(json.dumps(r) + "\n")
                sys.stdout.flush()
            else:
                typer.echo(_line(r))

        console.print(f"guide: connecting to {host}:{port} (retrying until a server "
                      "answers); Ctrl-C stops", highlight=False)
        n = run_guide(host, port, spacing, modality, device, max_frames, on_result=show,
                      on_note=lambda t: console.print(f"note: {t}", highlight=False,
                                                      style="yellow"))
        console.print(f"guide: {n} image(s) analysed", highlight=False)
