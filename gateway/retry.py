"""Which failed attempts may be retried, and a budget that keeps retries from piling up.

The rules: a request that never left (the connection failed) may always go to another
instance; a request that got 502, 503 or 504 back may be retried only if it is idempotent
(GET, HEAD, OPTIONS, PUT, DELETE) or carries an ``Idempotency-Key``. Every retry draws on a
budget of ``ratio`` times the recent requests plus a small floor, as in Envoy's retry budgets,
so a failing fleet does not get a multiple of its normal load.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from discovery.client import IDEMPOTENT_METHODS

RETRYABLE_STATUSES = frozenset({502, 503, 504})


def may_retry_status(method: str, status: int, has_idempotency_key: bool) -> bool:
    """Whether an upstream answer with *status* may be retried on another instance."""
    return status in RETRYABLE_STATUSES and (method in IDEMPOTENT_METHODS or has_idempotency_key)


class RetryBudget:
    """Allows retries up to ``ratio`` of the requests seen in the last window, plus ``floor``.

    Two fixed windows are blended (the previous one weighted by how much of it still overlaps
    a sliding window), which is cheap and close enough for a safety limit.

    Counted on the event loop's thread only, so without a lock: :meth:`usage`, which the
    admin thread calls, reads and changes nothing.
    """

    def __init__(
        self,
        ratio: float = 0.2,
        floor: int = 10,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio, self.floor, self.window, self.clock = ratio, floor, window, clock
        self._start = clock()
        self._requests = self._retries = 0
        self._prev_requests = self._prev_retries = 0
        self.denied = 0
        self.granted = 0

    def _rolled(self, now: float) -> tuple[float, float, float, float, float]:
        """(start, requests, retries, previous requests, previous retries) as of *now*."""
        start, elapsed = self._start, now - self._start
        if elapsed < self.window:
            return start, self._requests, self._retries, self._prev_requests, self._prev_retries
        if elapsed < 2 * self.window:  # the current window became the previous one
            return start + self.window, 0, 0, self._requests, self._retries
        return now, 0, 0, 0, 0

    def _roll(self, now: float) -> float:
        """Move the windows on to *now*; return how much of the previous one still counts."""
        if now - self._start >= self.window:
            start, _, _, prev_requests, prev_retries = self._rolled(now)
            self._start, self._requests, self._retries = start, 0, 0
            self._prev_requests, self._prev_retries = int(prev_requests), int(prev_retries)
        return 1.0 - (now - self._start) / self.window

    def record_request(self) -> None:
        """Count one incoming request."""
        now = self.clock()
        if now - self._start >= self.window:
            self._roll(now)
        self._requests += 1

    def try_acquire(self) -> bool:
        """Take one retry from the budget; False means the retry must not happen."""
        overlap = self._roll(self.clock())
        requests = self._requests + self._prev_requests * overlap
        retries = self._retries + self._prev_retries * overlap
        if retries + 1 > self.ratio * requests + self.floor:
            self.denied += 1
            return False
        self._retries += 1
        self.granted += 1
        return True

    def usage(self) -> dict[str, float]:
        """What the budget holds now, for the routing page; takes nothing from it."""
        now = self.clock()
        start, requests, retries, prev_requests, prev_retries = self._rolled(now)
        overlap = 1.0 - (now - start) / self.window
        requests += prev_requests * overlap
        retries += prev_retries * overlap
        return {
            "window_seconds": self.window,
            "requests": round(requests, 1),
            "retries": round(retries, 1),
            "allowed": round(self.ratio * requests + self.floor, 1),
            "granted_total": self.granted,
            "denied_total": self.denied,
        }
