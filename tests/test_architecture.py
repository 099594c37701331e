"""The import rule of docs/DESIGN.md ("Shape"): the guidance analysers read a Frame and
nothing else, so ``guidance/`` imports no imager, anatomy, scene, session, procedures,
lab, CLI, live, app or io module — not at module level, not inside a function — and the
lab (labelled cases, ``evaluate``) does not import the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "needleguide"

GUIDANCE_FORBIDDEN = ("us", "fluoro", "anatomy", "scene", "session", "procedures", "lab",
                      "cli", "live", "app", "io")
LAB_FORBIDDEN = ("cli",)


def imports_of(path: Path, root: Path = PKG) -> list[tuple[int, list[str]]]:
    """Every import statement of ``path``, wherever it stands (module level, functions,
    ``if TYPE_CHECKING``, try blocks), as (line, absolute names it may load):
    ``from pkg import name`` gives ``pkg`` and ``pkg.name`` (so ``from needleguide import
    us`` counts as ``needleguide.us``); relative imports are resolved against the file's
    package (``root`` is the ``needleguide`` folder)."""
    package = ["needleguide", *path.parent.relative_to(root).parts]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, [a.name]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, [mod] + [f"{mod}.{a.name}" for a in node.names]))
    return out


def violations(folder: str, forbidden: tuple[str, ...], root: Path = PKG) -> list[str]:
    """``file:line imports name`` for each import in ``root/folder/*.py`` that loads
    ``needleguide.<one of forbidden>``."""
    bad = []
    for path in sorted((root / folder).glob("*.py")):
        for line, names in sorted(imports_of(path, root)):
            hit = next((m for m in names if m.split(".")[0] == "needleguide"
                        and len(m.split(".")) >= 2 and m.split(".")[1] in forbidden), None)
            if hit is not None:
                bad.append(f"src/needleguide/{folder}/{path.name}:{line} imports {hit}")
    return bad


def test_guidance_imports_no_simulator_session_lab_or_cli():
    bad = violations("guidance", GUIDANCE_FORBIDDEN)
    assert not bad, "guidance/ must read Frames only (docs/DESIGN.md):\n" + "\n".join(bad)


def test_lab_does_not_import_cli():
    bad = violations("lab", LAB_FORBIDDEN)
    assert not bad, "lab/ must not import the CLI (docs/DESIGN.md):\n" + "\n".join(bad)


@pytest.mark.parametrize("src, expect", [
    ("from needleguide.us import USImager", "needleguide.us"),
    ("def f():\n    import needleguide.fluoro.carm as c", "needleguide.fluoro.carm"),
    ("from needleguide import scene", "needleguide.scene"),
    ("from ..cli.contrast import needle_for", "needleguide.cli.contrast"),
    ("from .. import lab", "needleguide.lab"),
    ("try:\n    from needleguide.io.dicom_in import read\nexcept ImportError:\n    pass",
     "needleguide.io.dicom_in"),
    ("class A:\n    def m(self):\n        from needleguide.session import run",
     "needleguide.session"),
])
def test_checker_names_the_file_and_the_import(tmp_path, src, expect):
    """The checker itself: a forbidden import anywhere in a guidance file is named, and
    allowed imports (numpy, frame, guidance itself, relative siblings) are not."""
    (tmp_path / "guidance").mkdir()
    (tmp_path / "guidance" / "bad.py").write_text(src + "\n")
    (tmp_path / "guidance" / "fine.py").write_text(
        "import numpy as np\nfrom needleguide.frame import Frame\n"
        "from .needle import detect_needle\nfrom needleguide.guidance import levels\n"
        "from . import contrast\nimport needleguide.geometry\n")
    bad = violations("guidance", GUIDANCE_FORBIDDEN, root=tmp_path)
    line = next(i for i, t in enumerate(src.splitlines(), 1) if "import" in t)
    assert bad == [f"src/needleguide/guidance/bad.py:{line} imports {expect}"]


def test_live_and_app_keep_their_places():
    """``live/`` (one running session) serves the app and the OpenIGTLink server and
    imports neither them nor the CLI; ``app/`` (the browser trainer) does not import the
    CLI."""
    bad = violations("live", ("app", "cli")) + violations("app", ("cli",))
    assert not bad, "box order (docs/DESIGN.md):\n" + "\n".join(bad)
