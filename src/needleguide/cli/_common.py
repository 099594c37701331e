"""Shared CLI helpers: the console, output sets (``--out``, ``--force``), seeds, the
fluoroscopy display polarity, and the first-run announcement of numba's compilation."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console

from needleguide.errors import SEED_MAX

console = Console(stderr=True)

FORCE_HELP = "Write into --out even when it holds files this command did not write."
SEED_HELP = f"Random seed, 0–{SEED_MAX}"
DISPLAYS = ("black-bone", "white-bone")
DEFAULT_DISPLAY = "black-bone"
DISPLAY_HELP = ("Fluoroscopy display polarity: black-bone (the fluoroscopic monitor: bone "
                "dark, needle and contrast black) | white-bone (radiographic: bone white).")
DISPLAY_WORDS = {"black-bone": "black-bone display (bone dark, needle and contrast black)",
                 "white-bone": "white-bone display (radiographic: bone, needle and contrast "
                               "white)"}



def kernel_modules(*prefixes: str) -> tuple[str, ...]:
    """Modules of the package whose source holds numba kernels cached on disk
    (``@njit(cache=True)``): compiled on the first run, then read from numba's cache.
    With ``prefixes``, only the modules whose names start with one of them."""
    import needleguide

    root = Path(needleguide.__file__).parent
    found = []
    for f in sorted(root.rglob("*.py")):
        if "__pycache__" in f.parts or f.parent.name == "cli":
            continue
        try:
            if "cache=True" not in f.read_text(encoding="utf-8"):
                continue
        except OSError:
            continue
        name = ".".join(("needleguide", *f.relative_to(root).with_suffix("").parts))
        if not prefixes or name.startswith(prefixes):
            found.append(name)
    return tuple(found)


@contextlib.contextmanager
def writing(out: Path, command: str, force: bool = False, flag: str = "--out",
            legacy: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """The folder to write ``command``'s outputs into; they appear in ``out`` together when
    the block ends, or not at all (:func:`needleguide.outputs.output_set`)."""
    from needleguide.outputs import output_set

    with output_set(out, command, force=force, flag=flag, legacy=legacy) as d:
        yield d


def check_landmark(names, name: str, flag: str = "--needle-to") -> str:
    """``name`` if it is one of the landmark ``names``, else one UserError naming ``flag``
    with the closest names."""
    import difflib

    from needleguide.errors import UserError

    if name in names:
        return name
    near = difflib.get_close_matches(name, list(names), n=6, cutoff=0.4)
    raise UserError(f"{flag}: unknown landmark {name!r}"
                    + (f"; did you mean: {', '.join(near)}" if near else
                       f"; {len(names)} landmarks, e.g. {', '.join(list(names)[:4])}"))


def check_level(vertebrae, level: str, flag: str = "--level") -> str:
    """``level``: a vertebra ('L4') or two joined by '-' ('L4-L5') of ``vertebrae``, else
    one UserError naming ``flag`` and the vertebrae there are."""
    from needleguide.errors import UserError

    names = [n.strip() for n in str(level).split("-")]
    if not 1 <= len(names) <= 2 or not all(names):
        raise UserError(f"{flag}: expected a vertebra ('L4') or a segment ('L4-L5'), got "
                        f"{level!r}")
    missing = [n for n in names if n not in vertebrae]
    if missing:
        raise UserError(f"{flag}: vertebra {missing[0]!r} is not in this patient; available: "
                        f"{', '.join(vertebrae) or 'none'}")
    return level


def check_display(display: str) -> str:
    from needleguide.errors import check_choice

    return check_choice("--display", display, DISPLAYS)


def uncached_modules(modules: tuple[str, ...] | None = None) -> tuple[int, int]:
    """(modules whose numba kernels have no usable cache entry, modules with kernels).

    numba stamps a module's cache with the module file's time and size, so a module is
    cold as a whole (never run here, or edited since); kernels only called from other
    kernels are never cached themselves, hence the per-module test."""
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover
        return 0, 0
    cold = total = 0
    for name in kernel_modules() if modules is None else modules:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        caches = [getattr(getattr(v, "_cache", None), "_cache_file", None)
                  for v in vars(mod).values() if isinstance(v, Dispatcher)]
        caches = [c for c in caches if c is not None]
        if not caches:
            continue
        total += 1
        warm = False
        for c in caches:
            try:
                warm = warm or bool(c._load_index())
            except Exception:  # noqa: BLE001 - numba internals: treat as not cached
                pass
        cold += not warm
    return cold, total


def announce_compile(*prefixes: str, about: str = "1–2 min") -> bool:
    """Say so when numba will compile kernels on this run (the first run, or the first
    after an update) in the modules under ``prefixes`` (all if none); True if it will."""
    cold, total = uncached_modules(kernel_modules(*prefixes))
    if cold == 0:
        return False
    console.print(f"first run: compiling numerical kernels ({cold} of {total} modules) once, "
                  f"about {about} on 2 cores; later runs use numba's cache", highlight=False,
                  soft_wrap=True)
    return True

