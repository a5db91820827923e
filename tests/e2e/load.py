"""Steady load through the gateway, bounded in count and time, that records every outcome.

    with Load(f"{GATEWAY}/catalog/items") as load:
        load.wait_for_requests(100, timeout=30)
        ...                       # kill or stop a replica
    print(load.summary())         # threads joined: the counts are final

A request fails when it raises or answers anything but 200. The client timeout is longer than
the gateway's own deadline (30s), so a failure is the gateway's answer, not an impatient client.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from types import TracebackType

import requests

from tests.e2e.stack import session
from tests.integration.harness import wait_for

CLIENT_TIMEOUT = 35.0


class Load:
    """*threads* clients, each sending at most *rate* requests a second, until stopped."""

    def __init__(
        self,
        url: str,
        threads: int = 4,
        rate: float = 25.0,
        max_requests: int = 6000,
        max_seconds: float = 150.0,
    ) -> None:
        self.url = url
        self.interval = 1.0 / rate
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.sent = 0
        self._started = 0
        self.failures: list[str] = []
        self.served: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{n}", daemon=True)
            for n in range(threads)
        ]

    def __enter__(self) -> Load:
        self._deadline = time.monotonic() + self.max_seconds
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT + 5)

    def wait_for_requests(self, count: int, timeout: float) -> None:
        """Wait until *count* requests in all have been answered (or have failed)."""
        wait_for(lambda: self.sent >= count, timeout, f"{count} requests through the gateway")

    def summary(self) -> str:
        """One line: requests sent, failed, and which instances served them."""
        with self._lock:
            served = ", ".join(f"{k}={v}" for k, v in sorted(self.served.items()))
            return f"{self.sent} requests, {len(self.failures)} failed; served by: {served}"

    def _take_slot(self) -> bool:
        with self._lock:
            if self._started >= self.max_requests or time.monotonic() >= self._deadline:
                return False
            self._started += 1
            return True

    def _run(self) -> None:
        with session() as http:
            while not self._stop.is_set() and self._take_slot():
                started = time.monotonic()
                instance, failure = self._one(http)
                with self._lock:
                    self.sent += 1
                    if failure is None:
                        self.served[instance] += 1
                    else:
                        self.failures.append(failure)
                # Pacing, not waiting for a condition: it returns at once when stopped.
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _one(self, http: requests.Session) -> tuple[str, str | None]:
        try:
            response = http.get(self.url, timeout=CLIENT_TIMEOUT)
        except requests.RequestException as exc:
            return "", f"{type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return "", f"HTTP {response.status_code}: {response.text[:300]}"
        return response.headers.get("X-Instance-ID", "?"), None
