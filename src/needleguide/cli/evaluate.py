"""``needleguide evaluate needle|levels|contrast --n N --seed S [--json]``: run a guidance
analyser and its baseline on labelled simulated cases (rich progress bar) and print the
figures side by side as tables, or one JSON object with the fixed keys of issue 6
(docs/guidance_levels_contrast.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from needleguide.cli._common import FORCE_HELP, SEED_HELP, console

TARGETS = ("needle", "levels", "contrast")


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        target: str = typer.Argument(..., help="needle | levels | contrast"),
        n: int = typer.Option(4, "--n", help="needle: needle frames (and as many "
                              "needle-free ones) per modality; levels, contrast: phantoms "
                              "(1–200)."),
        seed: int = typer.Option(1000, "--seed", help=SEED_HELP + "; the first seed. Held "
                                 "out (never used in tuning): needle ≥ 1040, levels and "
                                 "contrast ≥ 1080."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        overlays: Path = typer.Option(None, "--overlays", help="Folder for overlay PNGs "
                                      "(needle, levels, contrast)."),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP.replace("--out",
                                                                           "--overlays")),
    ) -> None:
        """Evaluate an analyser against its baseline on simulated, labelled cases."""
        import contextlib

        from needleguide.cli._common import announce_compile, writing
        from needleguide.errors import UserError, check_choice, check_range, check_seed

        check_choice("target", target, TARGETS)
        check_range("--n", n, 1, 200)
        check_seed(seed)
        fn = _evaluator(target)
        if fn is None:
            raise UserError("needle: the needle evaluation is not available "
                            "(needleguide.lab.eval_needle is missing)")
        sink = contextlib.nullcontext(None) if overlays is None else \
            writing(overlays, "evaluate", force, flag="--overlays")
        with sink as d:
            if not as_json:
                announce_compile("needleguide.anatomy", "needleguide.fluoro", "needleguide.us",
                                 "needleguide.scene", f"needleguide.guidance.{target[:6]}")
            result = _run(target, fn, n, seed, quiet=as_json, overlays=d)
        if as_json:
            sys.stdout.write(json.dumps(result, default=float) + "\n")
            return
        from needleguide.cli._evaluate_tables import print_tables

        print_tables(target, result)
        if overlays is not None:
            console.print(f"overlays in {overlays}", highlight=False)


def _evaluator(target: str) -> Callable | None:
    if target == "needle":
        try:
            from needleguide.lab.eval_needle import evaluate_needle
        except ImportError:
            return None
        return evaluate_needle
    if target == "levels":
        from needleguide.lab.eval_levels import evaluate_levels

        return evaluate_levels
    from needleguide.lab.eval_contrast import evaluate_contrast

    return evaluate_contrast


def _run(target: str, fn: Callable, n: int, seed: int, quiet: bool,
         overlays: Path | None = None) -> dict:
    """The evaluation, with a rich progress bar unless ``quiet``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if quiet:
        if target == "needle":
            return fn(n=n, seed=seed, progress=False, overlays_dir=overlays)
        return fn(n, seed, overlays_dir=overlays)
    unit = {"levels": "phantom", "contrast": "case"}.get(target, "step")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as prog:
        task = prog.add_task(f"{target}: starting", total=None)

        if target == "needle":
            def tick3(done: int, total: int, what: str) -> None:
                prog.update(task, completed=done, total=total, description=what)

            return fn(n=n, seed=seed, progress=tick3, overlays_dir=overlays)

        def tick(done: int, total: int) -> None:
            what = f"{target}: {unit} {done} of {total}" if done < total else \
                f"{target}: measuring the analyser's speed at 512²"
            prog.update(task, completed=done, total=total, description=what)

        return fn(n, seed, progress=tick, overlays_dir=overlays)
