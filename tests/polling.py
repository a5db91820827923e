"""Waiting by polling with a deadline, shared by every test folder (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.1,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """Call *probe* until it returns something truthy; fail naming *what* at the deadline.

    Exceptions of the *tolerate* types count as "not yet" (a server still starting); any
    other exception fails at once. The probe runs at least once, even with a zero timeout.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    last_error: BaseException | None = None
    while True:
        try:
            last = probe()
        except tolerate as exc:
            last, last_error = None, exc
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; last: {last!r}, last error: {last_error}"
            )
        time.sleep(interval)
