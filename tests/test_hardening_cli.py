"""The probes of issue 17 against the real commands: every bad argument is refused before
anything is written (exit 2, one line naming the flag, nothing left behind); two runs into
one folder never mix; signals end a run with 130 / 143 and one line, leaving nothing; one
seed range; ``--version``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from needleguide.cli import main
from needleguide.errors import SEED_MAX
from needleguide.outputs import MANIFEST, read_manifest

ENV = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "200"}
SIM = ["simulate", "--procedure", "sacroiliac", "--side", "right", "--modality", "fluoro"]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert ".needleguide-stage" not in err and "Traceback" not in err
    return err


def nothing_left(folder: Path, keep: tuple[str, ...] = ()) -> None:
    assert sorted(p.name for p in folder.iterdir() if p.name not in keep) == []


def cli(*args: str, code: str = "", timeout: float = 300) -> subprocess.CompletedProcess:
    """``needleguide ARGS`` in a fresh interpreter, after running ``code`` (a patch)."""
    prog = f"import sys\n{code}\nfrom needleguide.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", prog, *args], capture_output=True,
                          text=True, env=ENV, timeout=timeout)


# ---- validation before any work -------------------------------------------------------------
@pytest.mark.parametrize("args, flag", [
    (["us", "--needle-to", "NoSuch.landmark"], "--needle-to"),
    (["us", "--side", "middle"], "--side"),
    (["us", "--bmi", "99"], "bmi"),
    (["us", "--level", "L9"], "level"),
    (["fluoro", "--level", "L9", "--spacing", "3", "--pixels", "64"], "level"),
    (["fluoro", "--side", "up"], "--side"),
    (["fluoro", "--bmi", "5"], "bmi"),
    (["fluoro", "--needle-to", "nowhere", "--spacing", "3"], "--needle-to"),
    (["fluoro", "--display", "grey"], "--display"),
    (["simulate", "--level", "L9"], "level"),
    (["simulate", "--bmi", "70"], "bmi"),
    (["contrast", "--pattern", "epidural", "--side", "up"], "--side"),
    (["phantom", "--png-pixel", "0"], "--png-pixel"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, capsys, args, flag):
    assert main([*args, "--out", str(tmp_path / "new" / "out")]) == 2
    err = one_line(capsys)
    assert err.startswith("error:") and flag in err
    nothing_left(tmp_path)


def test_an_unusable_out_is_found_before_simulating(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    t0 = time.perf_counter()
    assert main([*SIM, "--out", str(blocker / "out")]) == 2
    assert time.perf_counter() - t0 < 5.0  # before the session, not after it
    assert one_line(capsys).startswith(f"error: --out: cannot create {blocker / 'out'}")
    nothing_left(tmp_path, keep=("file",))


@pytest.mark.parametrize("command", [
    ["simulate"], ["demo"], ["us"], ["fluoro"], ["phantom"], ["synth-ct"],
    ["contrast", "--pattern", "epidural"]])
def test_one_seed_range_everywhere(tmp_path, capsys, command):
    assert main([*command, "--seed", str(SEED_MAX + 1), "--out", str(tmp_path / "o")]) == 2
    err = one_line(capsys)
    assert "seed" in err and str(SEED_MAX) in err.replace("2^32-1", str(SEED_MAX))
    nothing_left(tmp_path)


def test_evaluate_takes_the_same_seed_range(capsys):
    assert main(["evaluate", "levels", "--seed", str(SEED_MAX + 1)]) == 2
    assert str(SEED_MAX) in one_line(capsys)


def test_the_largest_seed_works(tmp_path, capsys):
    from needleguide.session import SessionConfig

    assert SessionConfig.build(seed=SEED_MAX).seed == SEED_MAX
    out = tmp_path / "fl"
    assert main(["fluoro", "--seed", str(SEED_MAX), "--pixels", "64", "--spacing", "3",
                 "--out", str(out)]) == 0
    assert read_manifest(out)["files"] == ["fluoro.png", "fluoro_inverted.png", "frame.json"]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "needleguide 0.1.0"


# ---- no silent overwrite ----------------------------------------------------------------------
def test_another_commands_folder_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["phantom", "--spacing", "3", "--no-pngs", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["fluoro", "--pixels", "64", "--spacing", "3", "--out", str(out)]) == 2
    err = one_line(capsys)
    assert "needleguide phantom" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["fluoro", "--pixels", "64", "--spacing", "3", "--out", str(out),
                 "--force"]) == 0
    assert set(before) - {MANIFEST} < {p.name for p in out.iterdir()}  # phantom's kept
    assert (out / "fluoro.png").is_file()
    nothing_left(tmp_path, keep=("ph",))


# ---- never a mixed set --------------------------------------------------------------------
def test_two_simulate_runs_into_one_out_never_mix(tmp_path):
    out = tmp_path / "out"
    lock = tmp_path / ".out.needleguide-lock"
    first = subprocess.Popen([sys.executable, "-m", "needleguide", *SIM, "--seed", "1",
                              "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
    t0 = time.monotonic()
    while not lock.exists():
        assert first.poll() is None and time.monotonic() - t0 < 60, first.communicate()
        time.sleep(0.05)
    second = cli(*SIM, "--seed", "2", "--out", str(out))
    assert second.returncode == 2
    err = second.stderr.strip()
    assert len(err.splitlines()) == 1 and "is being written by another needleguide process" \
        in err and f"pid {first.pid}" in err
    _, ferr = first.communicate(timeout=300)
    assert first.returncode == 0, ferr
    m = read_manifest(out)
    assert m["command"] == "simulate"
    assert sorted(m["files"]) == sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    assert set(m["files"]) == {"procedure.mp4", "report.html", "session.json"}
    session = json.loads((out / "session.json").read_text())
    assert [s["seed"] for s in session] == [1]  # the first run's, all of it
    assert "seed 1</li>" in (out / "report.html").read_text()
    nothing_left(tmp_path, keep=("out",))


# ---- signals ------------------------------------------------------------------------------
KILL_IN_VIDEO = """
import os, signal
import needleguide.report.media as media
_fit = media._fit
def fit(*a, **k):
    os.kill(os.getpid(), signal.SIGTERM)  # during the video encode
    return _fit(*a, **k)
media._fit = fit
"""


def test_sigterm_during_the_video_encode_leaves_nothing(tmp_path):
    r = cli(*SIM, "--out", str(tmp_path / "out"), code=KILL_IN_VIDEO)
    assert r.returncode == 143, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted by SIGTERM") and "Traceback" not in r.stderr
    assert [x for x in r.stderr.splitlines() if "interrupted" in x or "error" in x] == [last]
    nothing_left(tmp_path)


def _interrupt(swallow: bool) -> str:
    body = ("    try:\n        os.kill(os.getpid(), signal.SIGINT)\n"
            "    except BaseException:\n        pass  # a library eats it\n") if swallow \
        else "    os.kill(os.getpid(), signal.SIGINT)\n"
    return ("import os, signal\nimport needleguide.atomic as atomic\n_w = atomic.write_json\n"
            "def w(*a, **k):\n" + body + "    return _w(*a, **k)\natomic.write_json = w\n")


@pytest.mark.parametrize("swallow", [False, True])
def test_sigint_exits_130_with_one_line_even_when_swallowed(tmp_path, swallow):
    out = tmp_path / "ph"
    r = cli("phantom", "--spacing", "3", "--no-pngs", "--out", str(out),
            code=_interrupt(swallow))
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("interrupted by SIGINT")
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr
    nothing_left(tmp_path)  # the run did not publish a set it had been told to stop
