"""Rich rendering of an :class:`Advice` for the terminal."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from needleguide.advisor.engine import Advice
from needleguide.advisor.evidence import load_evidence
from needleguide.procedures import get_procedure

_SEV_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _score_style(score: int) -> str:
    return "green" if score >= 7 else "yellow" if score >= 4 else "red"


def print_advice(advice: Advice, console: Console | None = None) -> None:
    """Ranking table, warnings, what would change it, and the evidence key."""
    con = console or Console(width=None if sys.stdout.isatty() else 120)
    proc = get_procedure(advice.procedure)
    title = f"{proc.name}" + (f" — {advice.level}" if advice.level else "")
    table = Table(title=title, show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("Modality")
    table.add_column("Score", justify="center", max_width=13)
    table.add_column(escape("Reasons [evidence rows]"))
    for i, r in enumerate(advice.ranking, 1):
        reasons = "\n".join(escape(f"• {x.text} [{', '.join(x.evidence)}]") for x in r.reasons)
        table.add_row(str(i), r.modality + ("" if r.available else " (n/a)"),
                      f"[{_score_style(r.score)}]{r.score}[/]\n{r.band}", reasons)
    con.print(table)
    if advice.warnings:
        con.print("[bold]Warnings[/]")
        for w in advice.warnings:
            con.print(f"  [{_SEV_STYLE[w.severity]}]{w.severity.upper()}[/] "
                      + escape(f"{w.text} [{', '.join(w.evidence)}]"), highlight=False)
    if advice.changes:
        con.print("[bold]What would change the ranking[/]")
        for c in advice.changes:
            con.print("  " + escape(f"• {c.text} [{', '.join(c.evidence)}]"), highlight=False)
    ev = load_evidence()
    con.print(f"[bold]Evidence[/] (table v{ev.version}; certainty low to very low overall)")
    for rid in sorted(advice.cited()):
        row = ev[rid]
        vs = f" (vs {row.comparator})" if row.comparator else ""
        con.print("  " + escape(f"{rid}: {row.value}{vs} — {row.citation} [{row.certainty}]"),
                  highlight=False)
