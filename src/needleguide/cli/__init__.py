"""The ``needleguide`` command line (typer).

Each module in this package that defines ``register(app)`` adds its command(s); modules
keep heavy imports inside the command functions so that ``needleguide --help`` is fast.
Whatever goes wrong for a user reason ends as one line on stderr:

* a :class:`needleguide.errors.UserError` (or a usage error) — exit status 2;
* an input file that cannot be read — exit status 2;
* SIGINT / SIGTERM — temporary files removed, exit status 130 / 143 (also when some library
  swallowed the interrupt on the way: :mod:`needleguide.interrupts` remembers it).
"""

from __future__ import annotations

import importlib
import pkgutil
import signal
import sys

import typer

from needleguide import __version__, interrupts
from needleguide.errors import UserError

app = typer.Typer(
    name="needleguide",
    help="Image guidance for interventional pain and MSK injections: ultrasound and "
    "fluoroscopy simulated from physics on one virtual patient.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"needleguide {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version,
                                       is_eager=True, help="Print the version and exit.")
          ) -> None:
    """Image guidance for interventional pain and MSK injections: ultrasound and
    fluoroscopy simulated from physics on one virtual patient."""


def _register_all() -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def _say(msg: str) -> None:
    """One line on stderr, whatever the message holds (a library's text may span lines)."""
    print("error: " + " ".join(msg.split()), file=sys.stderr, flush=True)


def _signal_exit(signum: int) -> int:
    interrupts.ignore()
    name = signal.Signals(signum).name
    print(f"interrupted by {name}: stopped; temporary files removed, nothing half-written "
          "left", file=sys.stderr, flush=True)
    return 128 + signum


def _run(argv: list[str] | None) -> int:
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as e:  # typer/click exit (usage errors print their own lines)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except UserError as e:
        _say(str(e))
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        _say(f"{e.strerror}: {e.filename}" if e.filename else str(e))
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    with interrupts.handlers():
        try:
            rc = _run(argv)
            interrupts.ignore()  # done: a late Ctrl-C no longer interrupts the exit
            sig = interrupts.received()  # raised, then swallowed somewhere on the way
        except interrupts.Interrupted as e:
            sig = e.signum
        except KeyboardInterrupt:
            sig = signal.SIGINT
        except BaseException:
            sig = interrupts.received()  # an error on the way out of a signal
            if sig is None:
                raise
        return rc if sig is None else _signal_exit(sig)


def run() -> None:  # pragma: no cover - used by ``python -m needleguide``
    sys.exit(main())
