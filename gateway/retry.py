"""Which failed attempts may be retried, and a budget that keeps retries from piling up.

The rules: a request that never left (the connection failed) may always go to another
instance; a request that got 502, 503 or 504 back may be retried only if it is idempotent
(GET, HEAD, OPTIONS, PUT, DELETE) or carries an ``Idempotency-Key``. Every retry draws on a
budget of ``ratio`` times the recent requests plus a small floor, as in Envoy's retry budgets,
so a failing fleet does not get a multiple of its normal load.
"""

from __future__ import annotations

import threading
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
    """

    def __init__(
        self,
        ratio: float = 0.2,
        floor: int = 10,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio, self.floor, self.window, self.clock = ratio, floor, window, clock
        self._lock = threading.Lock()
        self._start = clock()
        self._requests = self._retries = 0
        self._prev_requests = self._prev_retries = 0
        self.denied = 0
        self.granted = 0

    def _roll(self, now: float) -> float:
        elapsed = now - self._start
        if elapsed >= self.window:
            recent = elapsed < 2 * self.window
            self._prev_requests = self._requests if recent else 0
            self._prev_retries = self._retries if recent else 0
            self._requests = self._retries = 0
            self._start = now if not recent else self._start + self.window
            elapsed = now - self._start
        return 1.0 - elapsed / self.window

    def record_request(self) -> None:
        """Count one incoming request."""
        with self._lock:
            self._roll(self.clock())
            self._requests += 1

    def try_acquire(self) -> bool:
        """Take one retry from the budget; False means the retry must not happen."""
        with self._lock:
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
        with self._lock:
            overlap = self._roll(self.clock())
            requests = self._requests + self._prev_requests * overlap
            retries = self._retries + self._prev_retries * overlap
            return {
                "window_seconds": self.window,
                "requests": round(requests, 1),
                "retries": round(retries, 1),
                "allowed": round(self.ratio * requests + self.floor, 1),
                "granted_total": self.granted,
                "denied_total": self.denied,
            }
