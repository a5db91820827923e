"""Spaces the requests of a watch loop, as Consul's blocking-query docs ask of clients.

A blocking query returns as soon as its index moves, so on a busy datacenter a loop that asks
again at once turns into a busy loop: ``/v1/health/state/any`` moves on every check write
anywhere, and every gateway worker would download every check on every flap. Consul's
"Blocking Queries" implementation notes ask clients to rate-limit for that reason.

:class:`Pacer` keeps the start of successive requests at least ``min_interval`` apart. A
query that blocked for longer than that (the common case: nothing changed for a while) is
asked again at once, so an isolated change costs no delay; only a change that follows another
within ``min_interval`` waits, at most that long, and the changes of a burst are read together
in one answer. The cost per change then stops growing with the write rate: a watch reads at
most ``1 / min_interval`` answers a second, whatever the datacenter does.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """The earliest moment the next request of one loop may start; one per watch thread."""

    def __init__(self, min_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0, got {min_interval}")
        self.min_interval = min_interval
        self.clock = clock  # tests pass a fake clock
        self._last_start: float | None = None

    def delay(self) -> float:
        """Seconds to wait before the next request starts (0 when it may start now)."""
        if self._last_start is None or self.min_interval == 0:
            return 0.0
        return max(0.0, self._last_start + self.min_interval - self.clock())

    def started(self) -> None:
        """Record that a request starts now."""
        self._last_start = self.clock()
