"""The wait a watch sends with its blocking queries: never one Consul would read as its default."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from discovery import watcher as watcher_module
from discovery.durations import parse_duration
from discovery.settings import ConsulSettings
from discovery.watcher import CatalogWatcher

# The least wait the watcher sends: a second, above any rounding to 0ms.
MIN_WAIT = 1.0


class Clock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("remaining", [0.0004, 0.0001, 0.3, 0.9])
def test_the_wait_sent_as_a_resync_hold_ends_is_never_zero_nor_below_the_minimum(
    remaining: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Consul reads wait=0 as its 5-minute default, while the client's timeout adds only the
    # wait it sent: a wait rounded down to 0ms would time every such read out.
    clock = Clock()
    monkeypatch.setattr(watcher_module, "time", SimpleNamespace(monotonic=clock))
    watcher = CatalogWatcher(ConsulSettings(), wait=30.0, resync_grace=15.0)
    watcher.resync_until = clock.now + remaining
    sent = watcher._wait_param()
    assert sent != "0ms"
    assert parse_duration(sent) == pytest.approx(MIN_WAIT)


def test_the_wait_follows_the_resync_hold_while_it_is_longer_than_the_minimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(watcher_module, "time", SimpleNamespace(monotonic=clock))
    watcher = CatalogWatcher(ConsulSettings(), wait=30.0, resync_grace=15.0)
    assert parse_duration(watcher._wait_param()) == pytest.approx(30.0)
    watcher.resync_until = clock.now + 7.5
    assert parse_duration(watcher._wait_param()) == pytest.approx(7.5)
