"""Steady, bounded HTTP load for churn scenarios, with per-request outcomes.

Used by the integration tests and by ``make chaos``. Every run stops by itself after
``max_requests`` or ``max_seconds``, whichever comes first.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests


@dataclass
class Outcome:
    """One request: when it started (monotonic), how long it took, and how it ended."""

    started: float
    seconds: float
    status: int  # 0 when no HTTP answer came back at all
    instance: str
    detail: str = ""


@dataclass
class LoadResult:
    """Every outcome of a run."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        """Requests that did not get a 2xx answer."""
        return [o for o in self.outcomes if not 200 <= o.status < 300]

    def by_instance(self, since: float = 0.0) -> Counter[str]:
        """How many successful requests each instance served after *since*."""
        return Counter(
            o.instance for o in self.outcomes if o.started >= since and 200 <= o.status < 300
        )

    def percentile(self, q: float) -> float:
        """Latency percentile in seconds, e.g. ``percentile(0.99)``."""
        times = sorted(o.seconds for o in self.outcomes)
        return times[min(len(times) - 1, int(q * len(times)))] if times else 0.0


class Load:
    """*threads* clients, each sending requests back to back with keep-alive."""

    def __init__(
        self,
        url: str,
        threads: int = 4,
        max_requests: int = 50_000,
        max_seconds: float = 120.0,
        method: str = "GET",
        timeout: float = 10.0,
    ) -> None:
        self.url, self.method, self.timeout = url, method, timeout
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        self._deadline = time.monotonic() + self.max_seconds
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def join(self) -> LoadResult:
        """Wait for the run to reach its bounds by itself, and return what it saw."""
        for thread in self._threads:
            thread.join(self.max_seconds + self.timeout + 5)
        return self.result

    def stop(self) -> LoadResult:
        """Stop the clients and return what they saw."""
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return self.result

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                with self._lock:
                    if len(self.result.outcomes) >= self.max_requests:
                        return
                started = time.monotonic()
                try:
                    response = session.request(self.method, self.url, timeout=self.timeout)
                    outcome = Outcome(
                        started,
                        time.monotonic() - started,
                        response.status_code,
                        response.headers.get("X-Instance-ID", ""),
                        "" if response.ok else response.text[:300],
                    )
                except requests.RequestException as exc:
                    outcome = Outcome(started, time.monotonic() - started, 0, "", repr(exc)[:300])
                with self._lock:
                    self.result.outcomes.append(outcome)
