"""``needleguide serve``: one live session streamed over OpenIGTLink to 3D Slicer
(docs/igtl.md), driven back by the ``ProbeToReference`` / ``NeedleToReference`` a client
sends; runs until Ctrl-C / SIGTERM."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from needleguide.cli._common import SEED_HELP, console

FPS_RANGE = (1.0, 120.0)


def _check_record(record: Path | None) -> Path | None:
    from needleguide.errors import UserError

    if record is None:
        return None
    if not record.name.endswith(".seq.nrrd"):
        raise UserError(f"--record: {record.name!r} must end in .seq.nrrd (a PLUS / Slicer "
                        "sequence file)")
    if record.is_dir():
        raise UserError(f"--record: {record} is a folder; expected a file name")
    if not record.parent.resolve().is_dir():
        raise UserError(f"--record: folder {record.parent} does not exist")
    return record


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        procedure: str = typer.Option("lumbar-transforaminal", help="Procedure id (see "
                                      "`needleguide procedures`)."),
        modality: str = typer.Option("us", help="us | fluoro"),
        bmi: float = typer.Option(28.0, help="Body-mass index of the phantom (15–60)."),
        seed: int = typer.Option(1, help=SEED_HELP + "."),
        level: str = typer.Option(None, help="Level, e.g. L4-L5 (default: the procedure's)."),
        side: str = typer.Option(None, help="right | left (default: the procedure's)."),
        pixels: int = typer.Option(512, help="Image matrix, pixels per side (128–1024)."),
        host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback unless "
                                 "--allow-remote)."),
        port: int = typer.Option(18944, help="TCP port (OpenIGTLink's 18944; 0: any free)."),
        fps: float = typer.Option(30.0, help="Frames per second (1–120)."),
        allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a --host "
                                          "other machines can reach (they can then drive "
                                          "the session)."),
        record: Path = typer.Option(None, "--record", help="Also record every frame and "
                                    "pose into this .seq.nrrd (3D Slicer Sequences)."),
    ) -> None:
        """Stream a live simulated procedure to 3D Slicer over OpenIGTLink: IMAGE
        Image_Reference, TRANSFORMs ProbeToReference, NeedleToReference,
        NeedleTipToReference, CArmToReference, NeedleTipDetectedToReference; STRING/STATUS
        events. Incoming ProbeToReference / NeedleToReference move the probe / needle."""
        from needleguide.cli._common import announce_compile
        from needleguide.cli.simulate import SESSION_KERNELS
        from needleguide.errors import check_range
        from needleguide.io.igtl import check_host, check_port
        from needleguide.live import LiveConfig

        check_port(port)
        check_range("--fps", fps, *FPS_RANGE, " frames/s")
        check_host(host, allow_remote)
        record = _check_record(record)
        cfg = LiveConfig(procedure=procedure, modality=modality, bmi=bmi, seed=seed,
                         level=level, side=side, pixels=pixels)
        _serve(cfg, host, port, fps, record, announce_compile(*SESSION_KERNELS))


def _serve(cfg, host: str, port: int, fps: float, record: Path | None, cold: bool) -> None:
    from needleguide import interrupts
    from needleguide.io.igtl import IgtlServer, LiveStreamer
    from needleguide.live import LiveSession

    server = IgtlServer(host, port)  # a port in use fails here, before any work
    recorder = streamer = None
    try:
        console.print(f"building the {cfg.procedure} session ({cfg.modality}, BMI "
                      f"{cfg.bmi:g}, seed {cfg.seed})" + (" and compiling" if cold else ""),
                      highlight=False)
        session = LiveSession(cfg)
        session.tick(0.0)  # render once (compiles on a cold cache) before a client waits
        if record is not None:
            from needleguide.io.plus_sequence import SequenceRecorder

            recorder = SequenceRecorder(record)
        streamer = LiveStreamer(session, server, fps=fps, recorder=recorder)
        console.print(f"OpenIGTLink server on {host}:{server.port}: streaming from the first "
                      f"client's connection at {fps:g} fps (3D Slicer: OpenIGTLinkIF, client "
                      f"to {host}:{server.port}); Ctrl-C stops", highlight=False,
                      soft_wrap=True)
        server.start()
        streamer.start()
        announced = False
        while True:
            time.sleep(0.2)
            if streamer.error is not None:
                raise streamer.error
            if not streamer.alive():
                break
            if session.done and not announced:
                announced = True
                console.print("procedure done; streaming the scene as it stands",
                              highlight=False)
    finally:
        if streamer is not None:
            streamer.stop()
        server.stop()
        if recorder is not None:
            with interrupts.deferred():
                if streamer is not None and streamer.error is None and len(recorder):
                    console.print(f"recorded {len(recorder)} frames: {recorder.close()}",
                                  highlight=False)
                else:
                    recorder.abort()
        if streamer is not None:
            console.print(f"streamed {streamer.frames} frames, sent {server.frames_sent} to "
                          f"{server.connections} client(s)", highlight=False)

