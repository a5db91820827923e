"""A wait that SIGTERM, SIGINT or SIGQUIT cuts short, for start-up work in gunicorn's master.

gunicorn installs its signal handlers before ``when_ready`` and only acts on what they queue
once its main loop runs, after the hook returns: a hook that retries for a minute leaves the
master deaf to Ctrl-C for that minute. Inside ``with StopSignals() as stop:`` those signals
set ``stop`` instead, ``stop.wait(delay)`` returns at once, and the previous handlers come
back when the block ends. A signal that arrived is in ``stop.received``: the caller acts on it,
since it is not passed on to the previous handler.

The wait sleeps in ``select`` on a pipe that is the process's signal wakeup fd
(``signal.set_wakeup_fd``): the interpreter writes to it as soon as any signal arrives, in
whichever thread, so a signal can neither slip in just before the wait starts nor go to a
thread that does not interrupt it. The Python handler only records the signal: it runs in the
main thread between two bytecodes, where taking a lock (``threading.Event.set``) could
deadlock with the very wait it interrupts. Main thread only, like ``signal.signal``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# What signal.signal() returns: a Python handler, SIG_DFL/SIG_IGN, or None (set outside Python).
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class StopSignals:
    """Turns the stop signals into a flag for the duration of a ``with`` block (main thread)."""

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self.signals = signals
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, _Handler] = {}
        self._selector: selectors.BaseSelector | None = None
        self._pipe: tuple[int, int] | None = None
        self._previous_wakeup_fd = -1

    def __enter__(self) -> StopSignals:
        reader, writer = os.pipe()
        os.set_blocking(reader, False)
        os.set_blocking(writer, False)
        self._pipe = (reader, writer)
        self._selector = selectors.DefaultSelector()
        self._selector.register(reader, selectors.EVENT_READ)
        self._previous_wakeup_fd = signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, previous in self._previous.items():
            # None: a handler installed outside Python; the default is the closest we can do.
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        if self._selector is not None:
            self._selector.close()
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
        self._selector = self._pipe = None

    def is_set(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.received is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to *timeout* seconds, less if a stop signal comes; return :meth:`is_set`."""
        if self._selector is None or self._pipe is None:
            raise RuntimeError("StopSignals.wait() outside its with block")
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.received is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            if self._selector.select(remaining):
                # Any signal wakes us (SIGCHLD, SIGWINCH...). Its Python handler, if any, runs
                # before the loop's next check: the interpreter flagged it before the write.
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._pipe[0], 512):
                        pass
        return self.received is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)
