"""``needleguide app``: the browser trainer (docs/app.md) — a local web app in which a
trainee does a whole procedure live; runs until Ctrl-C / SIGTERM."""

from __future__ import annotations

import time

import typer

from needleguide.cli._common import console

FPS_RANGE = (5.0, 60.0)


def register(app: typer.Typer) -> None:
    @app.command("app")
    def app_cmd(
        port: int = typer.Option(8765, help="TCP port (0: any free port)."),
        host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback unless "
                                 "--allow-remote)."),
        fps: float = typer.Option(25.0, help="Ultrasound frames per second the app aims at "
                                  "(5–60)."),
        allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a --host "
                                          "other machines can reach (anyone with the URL "
                                          "and its token can then use the app)."),
    ) -> None:
        """Start the trainer: set up a procedure and a patient (with the advisor's ranking),
        scan with ultrasound or image with fluoroscopy, handle the needle, inject a test
        dose, finish for the score and the report. Prints the URL with its token."""
        from needleguide.app.run import AppServer
        from needleguide.errors import check_range
        from needleguide.io.igtl import check_host, check_port

        check_port(port)
        check_range("--fps", fps, *FPS_RANGE, " frames/s")
        check_host(host, allow_remote)
        server = AppServer(host, port, fps=fps).start()
        try:
            console.print(f"needleguide trainer on {server.url}", highlight=False,
                          soft_wrap=True)
            console.print("open that URL (it carries the session token); Ctrl-C stops",
                          highlight=False)
            while server.alive():
                time.sleep(0.2)
        finally:
            server.stop()
