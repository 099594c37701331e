"""``needleguide procedures``: the procedure catalogue (table or JSON)."""

from __future__ import annotations

import json
import sys

import typer


def register(app: typer.Typer) -> None:
    @app.command("procedures")
    def procedures_cmd(
        procedure: str | None = typer.Argument(None, help="Show one procedure only."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """List the procedure catalogue: targets, US approach, FL views, needle, volumes."""
        from needleguide.procedures import get_procedure, load_catalogue

        procs = [get_procedure(procedure)] if procedure else list(load_catalogue())
        if as_json:
            data = [{**p.model_dump(mode="json"), "target_names": p.target_names()}
                    for p in procs]
            typer.echo(json.dumps(data if procedure is None else data[0], indent=2,
                                  ensure_ascii=False))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="needleguide procedures", show_lines=True)
        for col in ("id", "targets (default)", "US", "FL views", "needle", "volumes mL",
                    "avoid"):
            table.add_column(col, overflow="fold")
        for p in procs:
            targets = ", ".join(p.target_names()) or "— (no phantom region)"
            us = f"{p.us.probe}, {p.us.view}, {p.us.technique}"
            vols = (f"contrast {p.contrast_ml.min_ml:g}-{p.contrast_ml.max_ml:g}\n"
                    if p.contrast_ml else "") + (
                f"injectate {p.injectate_ml.min_ml:g}-{p.injectate_ml.max_ml:g}"
                f"{' (assumed)' if p.injectate_ml.basis == 'assumption' else ''}")
            table.add_row(f"{p.id}\n{p.name}", targets, us,
                          ", ".join(p.fluoro_view_names()) or "—",
                          f"{p.needle.gauge} G {p.needle.length_mm:g} mm", vols,
                          ", ".join((*p.avoid, *p.avoid_other)) or "—")
        Console(width=None if sys.stdout.isatty() else 160).print(table)
