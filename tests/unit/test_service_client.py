"""ServiceClient's start: every thread waits for the first catalog read, not only the first."""

from __future__ import annotations

import threading
import time

from discovery.client import ServiceClient
from discovery.errors import NoInstanceError
from discovery.settings import ConsulSettings


class SlowFirstRead:
    """A watcher whose first read arrives only when the test says so."""

    def __init__(self) -> None:
        self.services: dict[str, object] = {}
        self.ready = threading.Event()
        self.starts = 0

    @property
    def has_data(self) -> bool:
        return self.ready.is_set()

    def start(self) -> None:
        self.starts += 1

    def wait_ready(self, timeout: float) -> bool:
        return self.ready.wait(timeout)


def test_every_concurrent_first_caller_waits_for_the_first_read() -> None:
    client = ServiceClient(ConsulSettings(), services=["catalog"], timeout=5.0)
    watcher = SlowFirstRead()
    client.watcher = watcher  # type: ignore[assignment]
    waited: list[bool] = []

    def call() -> None:
        try:
            client.get("catalog", "/items")
        except NoInstanceError:
            waited.append(watcher.has_data)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    # Let every caller reach the wait; polled, with a deadline, never a bare assumption.
    deadline = time.monotonic() + 5
    while watcher.starts == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    watcher.ready.set()  # the first read arrives (with no catalog instance in it)
    for thread in threads:
        thread.join(10)
    assert watcher.starts == 1
    # Each caller got its answer only after the first read had arrived.
    assert waited == [True, True, True, True]
