"""SIGINT and SIGTERM as an exception that unwinds the stack (so that temporary files and
folders are removed on the way out), remembered even when some library swallows it.

The CLI installs :func:`handlers` around a command. A signal raises :class:`Interrupted`
(a ``BaseException``: ``except Exception`` does not catch it) and is recorded; the CLI
exits ``128 + signum`` (130 for SIGINT, 143 for SIGTERM) with one line whenever a signal
was received, even if the exception was lost in a destructor or a thread ("Exception
ignored in ..."). :mod:`needleguide.outputs` refuses to publish an output set after a
signal.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def received() -> int | None:
    """The first signal received since :func:`handlers` was entered, or None."""
    return _received[0] if _received else None


def _raise(signum: int, frame: object) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def _unraisable(hook):
    """An unraisable-exception hook that stays quiet about interrupts (they are recorded
    and reported once by the CLI) and passes everything else on."""

    def quiet(u) -> None:
        if isinstance(u.exc_value, Interrupted | KeyboardInterrupt):
            if isinstance(u.exc_value, Interrupted) and not _received:
                _received.append(u.exc_value.signum)
            return
        hook(u)

    return quiet


@contextlib.contextmanager
def handlers() -> Iterator[None]:
    """Raise :class:`Interrupted` on SIGINT / SIGTERM inside the block (main thread only;
    elsewhere a no-op); the previous handlers are restored afterwards and the record of
    signals received is cleared."""
    _received.clear()
    try:
        old = {s: signal.signal(s, _raise) for s in SIGNALS}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    old_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(old_hook)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        sys.unraisablehook = old_hook
        _received.clear()


def ignore() -> None:
    """Ignore further SIGINT / SIGTERM (while exiting after the first one)."""
    with contextlib.suppress(ValueError):
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT / SIGTERM back during a short critical section (publishing or removing
    an output set); a signal that arrives meanwhile is delivered right after it."""
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    except (AttributeError, ValueError, OSError):  # pragma: no cover - non-POSIX
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
