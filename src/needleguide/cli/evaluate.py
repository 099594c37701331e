"""``needleguide evaluate needle|levels|contrast --n N --seed S [--json]``: run a guidance
analyser and its baseline on labelled simulated cases and print the figures side by side
(rich table), or one JSON object with the fixed keys of issue 6
(docs/guidance_levels_contrast.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from needleguide.cli._common import console, out_dir

TARGETS = ("needle", "levels", "contrast")


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        target: str = typer.Argument(..., help="needle | levels | contrast"),
        n: int = typer.Option(4, "--n", help="Number of phantoms / cases (1–200)."),
        seed: int = typer.Option(1000, "--seed", help="First seed (held-out seeds: ≥ 1000)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        overlays: Path = typer.Option(None, "--overlays", help="Folder for overlay PNGs "
                                      "(needle, levels, contrast)."),
    ) -> None:
        """Evaluate an analyser against its baseline on simulated, labelled cases."""
        from needleguide.errors import UserError, check_choice, check_range

        check_choice("target", target, TARGETS)
        check_range("n", n, 1, 200)
        check_range("seed", seed, 0, 2**31 - 1)
        if target == "needle":
            try:
                from needleguide.guidance.eval_needle import evaluate_needle
            except ImportError:
                raise UserError("needle: the needle evaluation is not available "
                                "(needleguide.guidance.eval_needle is missing)") from None
            result = evaluate_needle(n=n, seed=seed, progress=not as_json,
                                     overlays_dir=None if overlays is None else out_dir(overlays))
        else:
            result = _run(target, n, seed, quiet=as_json,
                          overlays=None if overlays is None else out_dir(overlays))
        if as_json:
            sys.stdout.write(json.dumps(result, default=float) + "\n")
            return
        _table(target, result)


def _run(target: str, n: int, seed: int, quiet: bool, overlays: Path | None = None) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if target == "levels":
        from needleguide.guidance.eval_levels import evaluate_levels as fn
    else:
        from needleguide.guidance.eval_contrast import evaluate_contrast as fn
    if quiet:
        return fn(n, seed, overlays_dir=overlays)
    with Progress(TextColumn(f"{target}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=console) as prog:
        task = prog.add_task(target, total=None)

        def tick(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        return fn(n, seed, progress=tick, overlays_dir=overlays)


def _fmt(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def _table(target: str, r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console()
    t = Table(title=f"needleguide evaluate {target}")
    if target == "levels":
        t.add_column("view")
        t.add_column("ours")
        t.add_column("baseline (profile peaks)")
        for v in ("fluoro_ap", "fluoro_lateral", "us_sweep"):
            t.add_row(v, _fmt(r["accuracy"][v]), _fmt(r["baseline"]["accuracy"][v]))
        out.print(t)
        out.print(f"per level: { {k: _fmt(v) for k, v in r['per_level'].items()} }")
        out.print(f"seeds {r['seeds']}, analyser {r['fps']:.0f} fps at 512²")
        return
    if target == "contrast":
        t.add_column("metric")
        for k in ("live", "dsa", "baseline"):
            t.add_column(k if k != "baseline" else "baseline (one spot)")
        rows = [("accuracy", lambda d: d["accuracy"]),
                ("intravascular sensitivity", lambda d: d["intravascular"]["sensitivity"]),
                ("intravascular specificity", lambda d: d["intravascular"]["specificity"]),
                ("alarm latency median (s)", lambda d: d["alarm_latency_s"]["median"]),
                ("alarm latency p95 (s)", lambda d: d["alarm_latency_s"]["p95"]),
                ("alarm after arrival median (s)",
                 lambda d: d["alarm_latency_after_arrival_s"]["median"]),
                ("alarm after arrival p95 (s)",
                 lambda d: d["alarm_latency_after_arrival_s"]["p95"]),
                ("alarm within 1 s of arrival", lambda d: d["alarm_within_1s_of_arrival"])]
        for name, get in rows:
            t.add_row(name, *[_fmt(get(r[k])) for k in ("live", "dsa", "baseline")])
        out.print(t)
        out.print(f"live confusion (truth → predicted): {r['live']['confusion']}")
        out.print(f"{r['cases']} cases, seeds {r['seeds']}, analyser {r['fps']:.0f} fps at 512²")
        return
    t.add_column("metric")
    t.add_column("modality")
    t.add_column("ours")
    t.add_column("baseline")
    for mod in ("us", "fluoro"):
        ours, base = r.get(mod, {}), r.get("baseline", {}).get(mod, {})
        for key in ("tip_error_mm", "angle_error_deg"):
            for q in ("median", "p95"):
                t.add_row(f"{key} {q}", mod, _fmt(ours.get(key, {}).get(q)),
                          _fmt(base.get(key, {}).get(q)))
        for key in ("detection_rate", "false_positive_rate", "fps"):
            t.add_row(key, mod, _fmt(ours.get(key)), _fmt(base.get(key)))
        so, sb = ours.get("tip_seen", {}), base.get("tip_seen", {})
        t.add_row("tip seen: share of needle frames", mod, _fmt(so.get("rate")),
                  _fmt(sb.get("rate")))
        for q in ("median", "p95"):
            t.add_row(f"tip seen: tip_error_mm {q}", mod,
                      _fmt(so.get("tip_error_mm", {}).get(q)),
                      _fmt(sb.get("tip_error_mm", {}).get(q)))
    out.print(t)
    for mod in ("us", "fluoro"):
        for band, m in r.get(mod, {}).get("breakdown", {}).get("angle_band", {}).items():
            out.print(f"{mod} {band}°: detected {_fmt(m['detection_rate'])}, tip median "
                      f"{_fmt(m['tip_error_mm']['median'])} mm, p95 "
                      f"{_fmt(m['tip_error_mm']['p95'])} mm ({m['n_needle_frames']} frames)")
    out.print(f"seed {r.get('seed')}, held out: {r.get('held_out')}")
