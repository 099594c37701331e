"""Output folders written as a set: all of a command's files appear together, or none.

``with output_set(out, "simulate", force=False) as d:`` — the command writes into ``d``, a
temporary folder beside ``out``; when the block ends without an error the set is given a
manifest (``.needleguide.json``: command, generation id, file list) and swapped into place
(``renameat2(RENAME_EXCHANGE)`` where the kernel has it, else two renames), and the old set
is removed. On an error or a signal the temporary folder is removed, and so are the parent
folders this call created: nothing is left behind.

* A lock (``.NAME.needleguide-lock`` beside ``out``) refuses a second writer to the same
  folder with a clear message instead of mixing two runs' files.
* A folder holding files this command did not write (no manifest, another command's
  manifest, or files beyond its manifest) is refused unless ``force``; then the new files
  are moved in one by one and the others are left alone (never deleted).
* Errors name the user's flag and folder, never a temporary path (:class:`UserError`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from needleguide import interrupts
from needleguide.errors import UserError

MANIFEST = ".needleguide.json"
LOCK_TAG = ".needleguide-lock"
STAGE_TAG = ".needleguide-stage-"
OLD_TAG = ".needleguide-old-"


def _writable(p: Path) -> bool:
    return os.access(p, os.W_OK | os.X_OK)


def _files(root: Path) -> list[str]:
    """Relative paths of the files (and links) under ``root``, the manifest excluded."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            if rel != MANIFEST:
                out.append(rel.replace(os.sep, "/"))
    return sorted(out)


def read_manifest(folder: Path) -> dict | None:
    """The manifest of an output folder, or None."""
    try:
        m = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and isinstance(m.get("files"), list) else None


class _Lock:
    """An exclusive, non-blocking ``flock`` on a lock file that is removed on release."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the holder before us may have removed the file: lock the current one
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return True
            os.close(fd)
        return False  # pragma: no cover - lost the race twenty times

    def holder(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.path.read_text().strip())
            return f" (pid {pid})"
        return ""

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still holding it: nobody locks a stale file
        os.close(self.fd)
        self.fd = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if the
    platform or file system cannot."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                   ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(e, os.strerror(e), str(b))


class OutputSet:
    """See the module docstring; use through :func:`output_set`."""

    def __init__(self, out: str | os.PathLike, command: str, force: bool = False,
                 flag: str = "--out", legacy: Callable[[Path], bool] | None = None) -> None:
        self.shown = str(out)
        out = Path(out).expanduser()
        self.out = Path(os.path.abspath(out.resolve() if out.is_symlink() else out))
        self.command, self.force, self.flag, self.legacy = command, force, flag, legacy
        self.created: list[Path] = []
        self.lock: _Lock | None = None
        self.stage: Path | None = None
        self.merge = False
        self.old_files: list[str] = []  # files of the set being replaced

    def _err(self, what: str) -> UserError:
        return UserError(f"{self.flag}: {what}")

    # -- entering --------------------------------------------------------------------------
    def open(self) -> Path:
        out, parent = self.out, self.out.parent
        if out.exists() and not out.is_dir():
            raise self._err(f"{self.shown} exists and is not a folder")
        if out.is_dir() and not _writable(out):
            raise self._err(f"cannot write to {self.shown} (permission denied)")
        anc = parent
        while not anc.exists():
            anc = anc.parent
        if not anc.is_dir():
            raise self._err(f"cannot create {self.shown}: {anc} is not a folder")
        if anc != parent and not _writable(anc):
            raise self._err(f"cannot create {self.shown}: {anc} is not writable")
        if not out.exists() and not _writable(anc):
            raise self._err(f"cannot create {self.shown}: {anc} is not writable")
        missing = []
        p = parent
        while p != anc:
            missing.append(p)
            p = p.parent
        for p in reversed(missing):
            p.mkdir()
            self.created.append(p)
        beside = _writable(parent)
        self.lock = _Lock(parent / f".{out.name}{LOCK_TAG}" if beside else out / LOCK_TAG)
        if not self.lock.acquire():
            who = self.lock.holder()
            self.lock = None
            raise self._err(f"{self.shown} is being written by another needleguide "
                            f"process{who}; wait for it to finish or choose another folder")
        self._recover(beside)
        self._check_owner()
        if beside:
            self.stage = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGE_TAG}", dir=parent))
        else:  # only the folder itself is writable: stage inside it, move files in
            self.stage = Path(tempfile.mkdtemp(prefix=STAGE_TAG, dir=out))
            self.merge = True
        return self.stage

    def _recover(self, beside: bool) -> None:
        """Under the lock: remove what a killed run left (staging folders), and put back an
        old set that a run killed in the middle of a two-rename swap had moved aside."""
        parent, name = self.out.parent, self.out.name
        if not beside:
            for p in self.out.glob(f"{STAGE_TAG}*"):
                shutil.rmtree(p, ignore_errors=True)
            return
        olds = sorted(parent.glob(f".{name}{OLD_TAG}*"), key=lambda p: p.stat().st_mtime)
        if olds and not self.out.exists():
            os.rename(olds.pop(), self.out)
        for p in [*parent.glob(f".{name}{STAGE_TAG}*"), *olds]:
            shutil.rmtree(p, ignore_errors=True)

    def _check_owner(self) -> None:
        out = self.out
        if not out.is_dir():
            return
        present = [f for f in _files(out) if not f.startswith((LOCK_TAG, STAGE_TAG))]
        if not present:
            return
        m = read_manifest(out)
        ours = m is not None and m.get("command") == self.command and \
            set(present) <= set(m["files"])
        if not ours and m is None and self.legacy is not None:
            ours = self.legacy(out)
        if ours:
            self.old_files = list(m["files"]) if m else present
            return
        self.merge = True
        if self.force:
            self.old_files = list(m["files"]) if m and m.get("command") == self.command \
                else []
            return
        if m is not None and m.get("command") != self.command:
            what, extra = f"the output of `needleguide {m.get('command')}`", present
        else:
            what = f"files that `needleguide {self.command}` did not write"
            extra = [f for f in present if m is None or f not in m["files"]]
        shown = ", ".join(extra[:4]) + (f" and {len(extra) - 4} more" if len(extra) > 4
                                        else "")
        raise self._err(f"{self.shown} already holds {what} ({shown}); choose another "
                        "folder or pass --force to write into it")

    # -- leaving ---------------------------------------------------------------------------
    def commit(self) -> None:
        stage, out = self.stage, self.out
        assert stage is not None
        files = _files(stage)
        manifest = {"command": self.command, "generation": uuid.uuid4().hex,
                    "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "needleguide": _version(), "files": files}
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        mode = 0o777 & ~_umask()
        with interrupts.deferred():
            if interrupts.received() is not None:
                raise interrupts.Interrupted(interrupts.received())
            if self.merge:
                self._merge(files)
            elif not out.exists():
                os.chmod(stage, mode)
                os.rename(stage, out)
            else:  # an empty folder or this command's previous set: swap
                os.chmod(stage, os.stat(out).st_mode & 0o7777)
                if not _exchange(stage, out):
                    old = out.parent / f".{out.name}{OLD_TAG}{uuid.uuid4().hex[:8]}"
                    os.rename(out, old)  # a kill here: the next run puts it back
                    os.rename(stage, out)
                    stage = old
                shutil.rmtree(stage, ignore_errors=True)  # the previous set
            self.stage = None

    def _merge(self, files: list[str]) -> None:
        """Move the new files into ``out`` one by one (the manifest last); files of an
        earlier run of this command that this run did not write are removed, others kept."""
        stage, out = self.stage, self.out
        for rel in files:
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.is_dir() and not dst.is_symlink():
                raise self._err(f"{self.shown}/{rel} is a folder; cannot replace it")
            os.replace(stage / rel, dst)
        for rel in set(self.old_files) - set(files):
            with contextlib.suppress(OSError):
                (out / rel).unlink()
        os.replace(stage / MANIFEST, out / MANIFEST)
        shutil.rmtree(stage, ignore_errors=True)

    def close(self) -> None:
        """Remove the staging folder and the parents this set created; release the lock."""
        with interrupts.deferred():
            if self.stage is not None:
                shutil.rmtree(self.stage, ignore_errors=True)
                self.stage = None
            if self.lock is not None:
                self.lock.release()
                self.lock = None
            if not self.out.exists():
                for p in reversed(self.created):
                    with contextlib.suppress(OSError):
                        p.rmdir()  # only when empty


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _version() -> str:
    from needleguide import __version__

    return __version__


@contextlib.contextmanager
def output_set(out: str | os.PathLike, command: str, force: bool = False,
               flag: str = "--out", legacy: Callable[[Path], bool] | None = None
               ) -> Iterator[Path]:
    """Write a command's outputs as one set (see the module docstring); yields the folder
    to write into. OS errors while writing are reported against ``flag`` and ``out``."""
    s = OutputSet(out, command, force=force, flag=flag, legacy=legacy)
    try:
        stage = s.open()
        try:
            yield stage
        except OSError as e:
            name = str(e.filename or "")
            if name and not name.startswith((str(stage), str(s.out))):
                raise  # an input file: the CLI reports it with its own name
            raise s._err(f"cannot write to {s.shown}: {e.strerror or e}") from None
        try:
            s.commit()
        except OSError as e:
            raise s._err(f"cannot write to {s.shown}: {e.strerror or e}") from None
    finally:
        s.close()
