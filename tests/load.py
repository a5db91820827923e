"""Steady, bounded HTTP GET load through the gateway, with per-request outcomes.

Used by the integration tests, the Docker end-to-end tests and ``make chaos``:

    with Load(f"{gateway}/catalog/items") as load:
        load.wait_for_requests(100, timeout=30)
        ...                       # kill or stop a replica
    print(load.result.summary())  # threads joined: the counts are final

Every run stops by itself after ``max_requests`` or ``max_seconds``, whichever comes first.
A request fails when it raises or answers anything but 200 (every loaded endpoint answers 200).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from tests.polling import wait_for


@dataclass
class Outcome:
    """One request: when it started (monotonic), how long it took, and how it ended."""

    started: float
    seconds: float
    status: int  # 0 when no HTTP answer came back at all
    instance: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class LoadResult:
    """Every outcome of a run."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        """Requests answered or failed so far."""
        return len(self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        """Requests that did not get a 200 answer."""
        return [o for o in self.outcomes if not o.ok]

    def by_instance(self, since: float = 0.0) -> Counter[str]:
        """How many successful requests each instance served after *since*."""
        return Counter(o.instance for o in self.outcomes if o.started >= since and o.ok)

    def summary(self) -> str:
        """One line: requests sent, failed, and which instances served them."""
        served = ", ".join(f"{k}={v}" for k, v in sorted(self.by_instance().items()))
        return f"{self.sent} requests, {len(self.failures)} failed; served by: {served}"

    def describe_failures(self, limit: int = 10) -> str:
        """The first *limit* failures, one per line, for an assertion message."""
        return "\n".join(repr(f) for f in self.failures[:limit])

    def percentile(self, q: float) -> float:
        """Latency percentile in seconds, e.g. ``percentile(0.99)``."""
        times = sorted(o.seconds for o in self.outcomes)
        return times[min(len(times) - 1, int(q * len(times)))] if times else 0.0


class Load:
    """*threads* keep-alive clients, each sending back to back or at most *rate* requests a second."""

    def __init__(
        self,
        url: str,
        threads: int = 4,
        max_requests: int = 50_000,
        max_seconds: float = 120.0,
        timeout: float = 10.0,
        rate: float | None = None,
    ) -> None:
        self.url, self.timeout = url, timeout
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.interval = 1.0 / rate if rate else 0.0
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

    def wait_for_requests(self, count: int, timeout: float) -> None:
        """Wait until *count* requests in all have been answered (or have failed)."""
        wait_for(
            lambda: self.result.sent >= count, timeout, f"{count} requests through the gateway"
        )

    def _run(self) -> None:
        with requests.Session() as session:
            session.trust_env = False  # only loopback and the test's own containers: no proxy
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                with self._lock:
                    if len(self.result.outcomes) >= self.max_requests:
                        return
                started = time.monotonic()
                try:
                    response = session.get(self.url, timeout=self.timeout)
                    outcome = Outcome(
                        started,
                        time.monotonic() - started,
                        response.status_code,
                        response.headers.get("X-Instance-ID", ""),
                        "" if response.status_code == 200 else response.text[:300],
                    )
                except requests.RequestException as exc:
                    outcome = Outcome(started, time.monotonic() - started, 0, "", repr(exc)[:300])
                with self._lock:
                    self.result.outcomes.append(outcome)
                if self.interval:
                    # Pacing, not waiting for a condition: it returns at once when stopped.
                    self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
