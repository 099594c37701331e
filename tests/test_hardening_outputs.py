"""Output sets (needleguide.outputs): a command's files appear together or not at all, a
second writer is refused, another command's folder is not overwritten without --force,
and nothing is left behind on an error or a signal."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from needleguide import interrupts
from needleguide.errors import UserError
from needleguide.outputs import MANIFEST, output_set, read_manifest


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def write_set(out: Path, command: str = "cmd", names=("a.txt", "sub/b.txt"), **kw) -> None:
    with output_set(out, command, **kw) as d:
        for n in names:
            (d / n).parent.mkdir(parents=True, exist_ok=True)
            (d / n).write_text(n)


def test_a_set_appears_whole_with_its_manifest(tmp_path):
    out = tmp_path / "x" / "y" / "out"
    with output_set(out, "cmd") as d:
        (d / "a.txt").write_text("a")
        assert not out.exists()  # nothing visible before the block ends
    m = read_manifest(out)
    assert m["command"] == "cmd" and m["files"] == ["a.txt"] and len(m["generation"]) == 32
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "a.txt"]
    assert hidden(out.parent) == []  # no lock file, no staging folder


def test_an_error_leaves_nothing_behind_not_even_created_parents(tmp_path):
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(UserError, match="bad value"), output_set(out, "cmd") as d:
        (d / "half.mp4").write_bytes(b"x" * 100)
        raise UserError("--level: bad value")
    assert list(tmp_path.iterdir()) == []


def test_a_rerun_replaces_the_whole_set(tmp_path):
    out = tmp_path / "out"
    write_set(out, names=("a.txt", "old.png"))
    write_set(out, names=("a.txt",))
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "a.txt"]  # old.png gone
    assert hidden(tmp_path) == []


def test_a_second_writer_is_refused_while_the_first_writes(tmp_path):
    out = tmp_path / "out"
    with output_set(out, "cmd") as d:
        (d / "a.txt").write_text("first")
        with pytest.raises(UserError, match=r"--out: .* is being written by another "
                                            r"needleguide process \(pid \d+\)"):
            write_set(out)
    assert (out / "a.txt").read_text() == "first" and read_manifest(out)["files"] == ["a.txt"]
    assert hidden(tmp_path) == []


def test_another_commands_folder_needs_force_and_keeps_its_files(tmp_path):
    out = tmp_path / "out"
    write_set(out, "phantom", names=("labels.nii.gz",))
    with pytest.raises(UserError) as e:
        write_set(out, "us", names=("us.png",))
    msg = str(e.value)
    assert msg.startswith("--out:") and "needleguide phantom" in msg and "--force" in msg
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "labels.nii.gz"]
    write_set(out, "us", names=("us.png",), force=True)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "labels.nii.gz", "us.png"]
    assert read_manifest(out)["command"] == "us"
    assert hidden(tmp_path) == []


def test_files_nobody_wrote_are_never_deleted(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"files that `needleguide cmd` did not write "
                                        r"\(notes.txt\)"):
        write_set(out)
    write_set(out, names=("a.txt", "old.txt"), force=True)
    write_set(out, names=("a.txt",), force=True)  # old.txt (ours) goes, notes.txt stays
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "a.txt", "notes.txt"]


def test_an_out_that_is_a_file_or_under_one_is_refused_first(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for out, what in ((f, "exists and is not a folder"), (f / "sub" / "out", "not a folder")):
        with pytest.raises(UserError, match=f"--out: .*{what}"):
            write_set(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_refused_first(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(UserError, match="--out: cannot write to"):
            write_set(out)
    finally:
        out.chmod(0o755)


def test_write_errors_name_the_flag_and_folder_not_a_temporary_path(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UserError) as e, output_set(out, "cmd", flag="--overlays") as d:
        raise OSError(28, "No space left on device", str(d / ".report.x1y2.html"))
    assert str(e.value) == f"--overlays: cannot write to {out}: No space left on device"
    assert list(tmp_path.iterdir()) == []


def test_what_a_killed_run_left_is_cleaned_up_by_the_next(tmp_path):
    out = tmp_path / "out"
    write_set(out, names=("a.txt",))
    (tmp_path / ".out.needleguide-stage-dead").mkdir()  # SIGKILL while writing
    os.rename(out, tmp_path / ".out.needleguide-old-1234")  # SIGKILL inside a swap
    write_set(out, names=("b.txt",))
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "b.txt"]
    assert hidden(tmp_path) == []


def test_a_signal_during_the_block_publishes_nothing(tmp_path):
    out = tmp_path / "out"
    write_set(out, names=("old.txt",))
    with interrupts.handlers():
        with pytest.raises(interrupts.Interrupted) as e, output_set(out, "cmd") as d:
            (d / "new.txt").write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)
    assert e.value.signum == signal.SIGTERM and e.value.exit_code == 143
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "old.txt"]
    assert hidden(tmp_path) == []


def test_a_swallowed_signal_still_stops_the_publication(tmp_path):
    out = tmp_path / "out"
    with interrupts.handlers():
        with pytest.raises(interrupts.Interrupted), output_set(out, "cmd") as d:
            (d / "a.txt").write_text("a")
            try:  # a library that eats the interrupt
                os.kill(os.getpid(), signal.SIGINT)
            except BaseException:  # noqa: BLE001
                pass
        assert interrupts.received() == signal.SIGINT
    assert list(tmp_path.iterdir()) == []


def test_manifest_lists_every_file(tmp_path):
    out = tmp_path / "out"
    write_set(out, names=("a.txt", "dsa/x.png", "dsa/y.png"))
    m = json.loads((out / MANIFEST).read_text())
    assert m["files"] == ["a.txt", "dsa/x.png", "dsa/y.png"]
