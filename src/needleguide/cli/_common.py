"""Shared CLI helpers: console, output folders, user-error reporting."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

console = Console(stderr=True)


def out_dir(path: Path) -> Path:
    """Create (if needed) and return the output folder; a file in the way is a user error."""
    from needleguide.errors import UserError

    if path.exists() and not path.is_dir():
        raise UserError(f"--out: {path} exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path
