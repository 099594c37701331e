"""``needleguide trial``: a virtual trial on Dask — N simulated procedures per procedure ×
modality on patients drawn from a population, rows to Parquet, resumable (docs/trials.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import typer

from needleguide.cli._common import console

POPULATION_HELP = ("Patient factors: a YAML file or an inline spec, e.g. "
                   "'bmi=normal(29,6)[18,50];degeneration=choice(0,1,2,3;0.4,0.3,0.2,0.1);"
                   "age=uniform(30,80);pregnant=bernoulli(0)' (docs/trials.md).")


def _bar(total: int, done: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("trial"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[failed]} failed"),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=console, transient=False)
    task = bar.add_task("trial", total=total, completed=done, failed=0, rate="")
    return bar, task


def _table(groups: list[dict[str, Any]]):
    from rich.table import Table

    def f(v, fmt: str, scale: float = 1.0) -> str:
        return "–" if v is None else format(v * scale, fmt)

    t = Table(title="virtual trial (medians over the procedures that ran)")
    for c in ("procedure", "modality", "n", "failed", "success %", "tip mm", "fluoro s",
              "DAP mGy·cm²", "IV missed", "top failure cause"):
        left = c in ("procedure", "modality", "top failure cause")
        t.add_column(c, justify="left" if left else "right", no_wrap=c != "top failure cause")
    for g in groups:
        causes = g["failure_causes"]
        top = next(iter(causes.items()), None)
        t.add_row(g["procedure"], g["modality"], str(g["n"]), str(g["failed"]),
                  f(g["success_rate"], ".1f", 100.0), f(g["median_tip_error_mm"], ".2f"),
                  f(g["median_fluoro_time_s"], ".1f"),
                  f(g["median_dap_gy_cm2"], ".0f", 1000.0),
                  f"{g['intravascular_missed']}/{g['intravascular_events']}",
                  "–" if top is None else f"{top[0]} ({top[1]})")
    return t


def _report(table, out: Path, title: str) -> dict | None:
    """The HTML/JSON trial report in OUT/report/ (lab/trial_report.py), if it exists."""
    if importlib.util.find_spec("needleguide.lab.trial_report") is None:
        return None
    from needleguide.cli._common import writing
    from needleguide.lab.trial_report import write_trial_report

    with writing(out / "report", "trial-report") as d:
        return write_trial_report(table, d, title)


def register(app: typer.Typer) -> None:
    from needleguide.cli._common import SEED_HELP

    @app.command("trial")
    def trial_cmd(
        procedure: list[str] = typer.Option(..., "--procedure", help="Procedure id (repeat "
                                            "for several; see `needleguide procedures`)."),
        modalities: str = typer.Option("us,fluoro", help="Comma-separated: us, fluoro, "
                                       "fluoro-dsa (fluoroscopy confirmed with DSA)."),
        n: int = typer.Option(20, "--n", help="Simulated procedures per procedure × "
                              "modality (the same n patients under every modality)."),
        population: str = typer.Option(None, help=POPULATION_HELP + " Default: "
                                       "bmi=normal(28,5)[18,45], degeneration "
                                       "0/1/2/3 at 40/30/20/10 %, age 30–80, not pregnant."),
        seed: int = typer.Option(1, help=SEED_HELP + " (the trial: patients and sessions)."),
        out: Path = typer.Option(..., help="Trial folder: trial.json, rows/*.parquet, "
                                 "report/. Rerun with the same arguments to resume."),
        scheduler: str = typer.Option(None, help="A running Dask scheduler "
                                      "(tcp://HOST:PORT) instead of the embedded cluster."),
        workers: int = typer.Option(None, help="Worker processes of the embedded cluster "
                                    "(1 thread each; default: the CPUs available)."),
        force: bool = typer.Option(False, "--force", help="Replace a different trial in "
                                   "--out (rows that stay valid are kept), or write into "
                                   "a folder holding other files."),
        as_json: bool = typer.Option(False, "--json", help="Print a summary object."),
    ) -> None:
        """Run a virtual trial: N simulated procedures per procedure × modality on patients
        drawn from a population, as Dask tasks; one Parquet row per procedure; resumable."""
        from needleguide.errors import UserError
        from needleguide.lab.population import DEFAULT_SPEC
        from needleguide.lab.trial import TrialSpec, run_trial
        from needleguide.lab.trial_summary import summary, trial_rows

        if scheduler is not None and workers is not None:
            raise UserError("--workers: only for the embedded cluster; with --scheduler the "
                            "scheduler's workers run the tasks")
        if workers is not None and not 1 <= workers <= 512:
            raise UserError(f"--workers: {workers} is outside the allowed range [1, 512]")
        if scheduler is not None and not scheduler.startswith(("tcp://", "tls://",
                                                               "inproc://", "ucx://")):
            raise UserError(f"--scheduler: {scheduler!r}: expected tcp://HOST:PORT")
        spec = TrialSpec.build(procedure, modalities, n, population or DEFAULT_SPEC, seed)
        if not as_json:
            from needleguide.cli._common import announce_compile
            from needleguide.cli.simulate import SESSION_KERNELS

            announce_compile(*SESSION_KERNELS)
        bar, task = _bar(spec.total, 0)

        def tick(p) -> None:
            bar.update(task, completed=p.done, failed=p.failed,
                       rate=f"{p.per_hour:.0f} procedures/h" if p.ran else "starting")

        from needleguide import interrupts

        try:
            with bar:
                res = run_trial(spec, out, scheduler=scheduler, workers=workers,
                                force=force, progress=tick)
        except interrupts.Interrupted:
            console.print(f"interrupted: the finished procedures are kept in {out}/rows; "
                          "rerun the same command to resume", highlight=False,
                          soft_wrap=True)
            raise
        table = trial_rows(res)
        s = summary(res, table)
        title = f"needleguide trial: {', '.join(spec.procedures)} × " \
                f"{', '.join(spec.modalities)}, n={spec.n}, seed {spec.seed}"
        rep = _report(table, res.out, title)
        s["report"] = None if rep is None else {
            "html": str(res.out / "report" / "trial.html"),
            "json": str(res.out / "report" / "trial.json")}
        if rep is None:
            s["notes"] = ["no trial report: needleguide.lab.trial_report is not installed"]
        if as_json:
            typer.echo(json.dumps(s, default=str))
            return
        # a log (no terminal) gets the whole table, not 80 columns of truncated cells
        console.print(_table(s["groups"]), width=None if console.is_terminal else 150)
        where = ("the scheduler's" if scheduler else "embedded") + f" {res.workers} worker" \
            + ("s" if res.workers != 1 else "")
        if res.ran == 0:
            console.print(f"nothing to run: all {res.total} procedures already have rows in "
                          f"{res.out / 'rows'}", highlight=False, soft_wrap=True)
        else:
            console.print(f"ran {res.ran} procedures in {res.elapsed_s:.1f} s on {where}: "
                          f"{res.per_hour:.0f} procedures/hour (cluster start "
                          f"{res.startup_s:.1f} s); {res.resumed} rows kept from earlier "
                          "runs", highlight=False, soft_wrap=True)
        failed = [r for r in table.to_pylist() if r["status"] != "ok"]
        for r in failed[:3]:
            console.print(f"failed: {r['task_key']}: {r['error']}", highlight=False,
                          soft_wrap=True)
        console.print(f"wrote {res.out / 'rows'}" + (f" and {res.out / 'report'}" if rep
                                                       else ""),
                      highlight=False, soft_wrap=True)
