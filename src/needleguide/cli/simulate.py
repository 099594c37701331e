"""``needleguide simulate`` (one simulated procedure) and ``needleguide demo`` (the README's
first command: right L4–5 transforaminal under fluoroscopy with DSA, and a right SIJ
injection under ultrasound and under fluoroscopy, side by side in one report)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from needleguide.cli._common import console

#: where the kernels a session runs live (for the first-run compile notice)
SESSION_KERNELS = ("needleguide.anatomy", "needleguide.fluoro", "needleguide.us",
                   "needleguide.scene", "needleguide.guidance.needle",
                   "needleguide.guidance.contrast")
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

    write_json(d / "session.json", [r.interface_json() | {
        "metrics": r.metrics, "plan": r.plan, "display": r.config.display,
        "confirm": r.extra["confirm"], "events_detail": [e.to_json() for e in r.events],
        # irradiation events (fluoro/dose_events.py): their doses sum to the metrics'
        "dose_events": [e.to_json() for e in r.dose_events]} for r in results])
    return write_report(results, d, title)


def _write_dicom(result, d: Path):
    """``simulate --dicom``: the session's study into d/dicom (session/dicom_out.py)."""
    from needleguide.session.dicom_out import write_session_dicom

    exp = write_session_dicom(result, d / "dicom")
    for m in exp.missing:
        console.print(f"dicom: {m} is not available; its objects were not written",
                      highlight=False, soft_wrap=True)
    return exp


def _line(r) -> str:
    """One console line per session: result, passes, dose, and what the operator went by."""
    m = r.metrics
    dose = (f", fluoro {m['fluoro_time_s']:.1f} s, DAP {m['dap_gy_cm2'] * 1000:.0f} mGy·cm²"
            if r.config.modality == "fluoro" else "")
    return (f"{r.config.procedure} · {r.config.modality}: "
            f"{'success' if m['success'] else 'NOT successful'}, tip {m['final_tip_error_mm']:.1f}"
            f" mm from the target (tolerance {m['tolerance_mm']:g} mm), {m['passes']} "
            f"pass{'es' if m['passes'] != 1 else ''}{dose}; {r.guidance_summary()}")


def register(app: typer.Typer) -> None:
    from needleguide.cli._common import DEFAULT_DISPLAY, DISPLAY_HELP, FORCE_HELP, SEED_HELP

    @app.command("simulate")
    def simulate_cmd(
        procedure: str = typer.Option("lumbar-transforaminal", help="Procedure id (see "
                                      "`needleguide procedures`)."),
        level: str = typer.Option(None, help="Level, e.g. L4-L5 (default: the procedure's)."),
        side: str = typer.Option(None, help="right | left (default: the procedure's)."),
        modality: str = typer.Option("fluoro", help="fluoro | us"),
        bmi: float = typer.Option(28.0, help="Body-mass index of the phantom (15–60)."),
        degeneration: int = typer.Option(0, help="0 none … 3 severe."),
        seed: int = typer.Option(1, help=SEED_HELP + " (anatomy, noise, the operator's "
                                 "hand)."),
        dsa: bool = typer.Option(False, "--dsa", help="Confirm with DSA (fluoro)."),
        display: str = typer.Option(DEFAULT_DISPLAY, help=DISPLAY_HELP),
        out: Path = typer.Option(..., help="Output folder: report.html, procedure.mp4, "
                                           "session.json."),
        dicom: bool = typer.Option(False, "--dicom", help="Also write OUT/dicom/: one DICOM "
                                   "study of the session (fluoroscopy shots as XA, "
                                   "ultrasound frames as a US cine, the radiation dose SR "
                                   "SR0001.dcm for fluoroscopy)."),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    ) -> None:
        """Run one simulated procedure (plan, passes, confirmation, injection) and write
        its report."""
        from needleguide.cli._common import announce_compile, check_display, writing
        from needleguide.errors import check_seed
        from needleguide.session import SessionConfig

        check_seed(seed)
        check_display(display)
        cfg = SessionConfig.build(procedure=procedure, level=level, side=side,
                                  modality=modality, bmi=bmi, degeneration=degeneration,
                                  seed=seed, dsa=dsa, display=display, keep_frames=dicom)
        with writing(out, "simulate", force) as d:
            if not as_json:
                announce_compile(*SESSION_KERNELS)
            results = _run_with_progress([cfg], "")
            _write_outputs(results, d, f"needleguide: {procedure} under {modality}")
            if dicom:
                _write_dicom(results[0], d)
        if as_json:
            typer.echo(json.dumps(results[0].interface_json()))
        else:
            console.print(_line(results[0]), soft_wrap=True, highlight=False)
            console.print(f"wrote {out / 'report.html'}", soft_wrap=True, highlight=False)

    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(Path("needleguide-out"), help="Output folder."),
        seed: int = typer.Option(1, help=SEED_HELP + "."),
        bmi: float = typer.Option(28.0, help="Body-mass index of the phantom (15–60)."),
        display: str = typer.Option(DEFAULT_DISPLAY, help=DISPLAY_HELP),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """The main job: a right L4–5 transforaminal under fluoroscopy (DSA) and a right SIJ
        injection under ultrasound and under fluoroscopy, on the built-in phantom; one
        report side by side (DIR/report.html)."""
        from needleguide.cli._common import announce_compile, check_display, writing
        from needleguide.errors import check_seed
        from needleguide.session import SessionConfig

        t0 = time.perf_counter()
        check_seed(seed)
        check_display(display)
        cfgs = [SessionConfig.build(**kw, bmi=bmi, seed=seed, display=display) for kw in DEMO]
        with writing(out, "demo", force) as d:
            announce_compile(*SESSION_KERNELS, about="1½–2 min")
            results = _run_with_progress(cfgs, "")
            _write_outputs(results, d, "needleguide demo: transforaminal (FL + DSA), "
                                       "sacroiliac (US vs FL)")
        for r in results:
            console.print(_line(r), soft_wrap=True, highlight=False)
        console.print(f"done in {time.perf_counter() - t0:.0f} s", highlight=False)
        typer.echo(str((out / "report.html").resolve()))
