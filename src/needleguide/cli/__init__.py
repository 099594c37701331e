"""The ``needleguide`` command line (typer).

Each module in this package that defines ``register(app)`` adds its command(s); modules
keep heavy imports inside the command functions so that ``needleguide --help`` is fast.
A :class:`needleguide.errors.UserError` anywhere is printed as one line (exit status 2).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from needleguide.errors import UserError

app = typer.Typer(
    name="needleguide",
    help="Image guidance for interventional pain and MSK injections: ultrasound and "
    "fluoroscopy simulated from physics on one virtual patient.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as e:  # typer/click exit
        return int(e.code or 0) if isinstance(e.code, int) else (0 if e.code is None else 1)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    return 0


def run() -> None:  # pragma: no cover - used by ``python -m needleguide``
    sys.exit(main())
