"""``needleguide simulate`` (one simulated procedure) and ``needleguide demo`` (the README's
first command: right L4–5 transforaminal under fluoroscopy with DSA, and a right SIJ
injection under ultrasound and under fluoroscopy, side by side in one report)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from needleguide.cli._common import console, out_dir

DEMO = (
    {"procedure": "lumbar-transforaminal", "level": "L4-L5", "side": "right",
     "modality": "fluoro", "dsa": True},
    {"procedure": "sacroiliac", "side": "right", "modality": "us"},
    {"procedure": "sacroiliac", "side": "right", "modality": "fluoro"},
)


def _run_with_progress(cfgs, label: str):
    """Run sessions with a rich progress bar per session."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from needleguide.session import run_session

    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[what]}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        for cfg in cfgs:
            name = f"{label}{cfg.procedure} · {cfg.modality}"
            task = bar.add_task(name, total=1.0, what="")

            def tick(f, what, task=task):
                bar.update(task, completed=f, what=what)

            results.append(run_session(cfg, progress=tick))
            bar.update(task, completed=1.0, what="done")
    return results


def _write_outputs(results, d: Path, title: str) -> Path:
    from needleguide.atomic import write_json
    from needleguide.report import write_report

    write_json(d / "session.json", [r.interface_json() | {"metrics": r.metrics,
                                                          "plan": r.plan,
                                                          "confirm": r.extra["confirm"],
                                                          "events_detail": [
                                                              e.to_json() for e in r.events]}
                                    for r in results])
    return write_report(results, d, title)


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        procedure: str = typer.Option("lumbar-transforaminal", help="Procedure id (see "
                                      "`needleguide procedures`)."),
        level: str = typer.Option(None, help="Level, e.g. L4-L5 (default: the procedure's)."),
        side: str = typer.Option(None, help="right | left (default: the procedure's)."),
        modality: str = typer.Option("fluoro", help="fluoro | us"),
        bmi: float = typer.Option(28.0, help="Body-mass index of the phantom (15–60)."),
        degeneration: int = typer.Option(0, help="0 none … 3 severe."),
        seed: int = typer.Option(1, help="Random seed (anatomy, noise, the operator's hand)."),
        dsa: bool = typer.Option(False, "--dsa", help="Confirm with DSA (fluoro)."),
        out: Path = typer.Option(..., help="Output folder: report.html, procedure.mp4, "
                                           "session.json."),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    ) -> None:
        """Run one simulated procedure (plan, passes, confirmation, injection) and write
        its report."""
        from needleguide.session import SessionConfig

        cfg = SessionConfig.build(procedure=procedure, level=level, side=side,
                                  modality=modality, bmi=bmi, degeneration=degeneration,
                                  seed=seed, dsa=dsa)
        d = out_dir(out)
        results = _run_with_progress([cfg], "")
        report = _write_outputs(results, d, f"needleguide: {procedure} under {modality}")
        if as_json:
            typer.echo(json.dumps(results[0].interface_json()))
        else:
            m = results[0].metrics
            console.print(f"final tip error {m['final_tip_error_mm']:.1f} mm (tolerance "
                          f"{m['tolerance_mm']:g}), passes {m['passes']}, "
                          f"{'success' if m['success'] else 'FAILED'}")
            console.print(f"wrote {report}")

    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("needleguide-out"), help="Output folder."),
        seed: int = typer.Option(1, help="Random seed."),
        bmi: float = typer.Option(28.0, help="Body-mass index of the phantom."),
    ) -> None:
        """The main job: a right L4–5 transforaminal under fluoroscopy (DSA) and a right SIJ
        injection under ultrasound and under fluoroscopy, on the built-in phantom; one
        report side by side (DIR/report.html)."""
        from needleguide.session import SessionConfig

        t0 = time.perf_counter()
        d = out_dir(out)
        cfgs = [SessionConfig.build(**kw, bmi=bmi, seed=seed) for kw in DEMO]
        results = _run_with_progress(cfgs, "")
        report = _write_outputs(results, d, "needleguide demo: transforaminal (FL + DSA), "
                                             "sacroiliac (US vs FL)")
        for r in results:
            m = r.metrics
            console.print(f"{r.config.procedure} · {r.config.modality}: tip error "
                          f"{m['final_tip_error_mm']:.1f} mm, passes {m['passes']}, "
                          f"fluoro {m['fluoro_time_s']:.1f} s, DAP {m['dap_gy_cm2']:.3f} Gy·cm²"
                          f", {'success' if m['success'] else 'FAILED'}")
        console.print(f"done in {time.perf_counter() - t0:.0f} s")
        typer.echo(str(report.resolve()))
