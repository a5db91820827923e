"""Retry rules, the retry budget, outlier ejection and the health model."""

from __future__ import annotations

import time

import pytest

from discovery.model import Check, Instance, aggregate_status
from discovery.stats import EjectionPolicy, StatsTable
from discovery.watcher import next_index
from gateway.retry import RetryBudget, may_retry_status


@pytest.mark.parametrize(
    ("method", "status", "key", "allowed"),
    [
        ("GET", 502, False, True),
        ("GET", 503, False, True),
        ("DELETE", 504, False, True),
        ("PUT", 503, False, True),
        ("POST", 503, False, False),
        ("POST", 503, True, True),
        ("PATCH", 502, False, False),
        ("GET", 500, False, False),
        ("GET", 404, False, False),
    ],
)
def test_status_retry_rules(method: str, status: int, key: bool, allowed: bool) -> None:
    assert may_retry_status(method, status, key) is allowed


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_retry_budget_allows_the_floor_then_a_ratio_of_requests() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, floor=2, window=10.0, clock=clock)
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False]
    for _ in range(50):
        budget.record_request()
    granted = sum(budget.try_acquire() for _ in range(20))
    assert granted == 10  # 0.2 * 50 + 2 - the 2 already taken
    assert budget.denied == 11


def test_retry_budget_refills_as_the_window_moves_on() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, floor=1, window=10.0, clock=clock)
    assert budget.try_acquire() and not budget.try_acquire()
    clock.now = 25.0
    assert budget.try_acquire()


def test_consecutive_failures_eject_with_growing_duration() -> None:
    stats = StatsTable(
        EjectionPolicy(consecutive_failures=2, base_seconds=1.0, max_ejected_fraction=1.0)
    )
    peers = ["a", "b"]
    assert not stats.record_failure("a", peers)
    assert stats.record_failure("a", peers)
    first = stats.get("a").ejected_until
    stats.get("a").ejected_until = 0.0
    stats.record_failure("a", peers)
    assert stats.get("a").ejections == 2
    assert stats.get("a").ejected_until - first > 1.0  # the second ejection lasts twice as long


def test_success_resets_the_failure_streak() -> None:
    stats = StatsTable(EjectionPolicy(consecutive_failures=2, max_ejected_fraction=1.0))
    stats.record_failure("a", ["a"])
    stats.record_success("a")
    assert not stats.record_failure("a", ["a"])


def test_at_most_half_of_a_service_is_ejected() -> None:
    stats = StatsTable(EjectionPolicy(consecutive_failures=1, max_ejected_fraction=0.5))
    peers = ["a", "b", "c", "d"]
    results = [stats.record_failure(i, peers, eject_now=True) for i in peers]
    assert results == [True, True, False, False]
    assert stats.ejected_count(peers) == 2


@pytest.mark.parametrize(
    ("previous", "returned", "expected"),
    [(0, 5, 5), (5, 9, 9), (9, 9, 9), (9, 4, 0), (0, 0, 1), (3, 0, 0)],
)
def test_blocking_index_rules(previous: int, returned: int, expected: int) -> None:
    assert next_index(previous, returned) == expected


@pytest.mark.parametrize(
    ("statuses", "ids", "expected"),
    [
        (("passing", "passing"), ("serfHealth", "service:x"), "passing"),
        (("passing", "warning"), ("serfHealth", "service:x"), "warning"),
        (("warning", "critical"), ("serfHealth", "service:x"), "critical"),
        (("passing", "critical"), ("serfHealth", "_service_maintenance:x"), "maintenance"),
        ((), (), "passing"),
    ],
)
def test_instance_health_is_the_worst_check(
    statuses: tuple[str, ...], ids: tuple[str, ...], expected: str
) -> None:
    checks = tuple(Check(i, i, s) for i, s in zip(ids, statuses, strict=True))
    assert aggregate_status(checks) == expected


def test_health_entry_uses_node_address_when_service_has_none() -> None:
    entry = {
        "Node": {"Node": "n1", "Address": "10.1.1.1"},
        "Service": {
            "ID": "web-1",
            "Service": "web",
            "Address": "",
            "Port": 80,
            "Tags": None,
            "Meta": None,
        },
        "Checks": [{"CheckID": "serfHealth", "Name": "Serf", "Status": "passing"}],
    }
    inst = Instance.from_health_entry(entry)
    assert (inst.address, inst.port, inst.passing, inst.tags) == ("10.1.1.1", 80, True, ())
    assert Instance.from_dict(inst.to_dict()) == inst


def test_refused_instance_returns_only_after_consul_sees_it_down_and_up() -> None:
    stats = StatsTable(EjectionPolicy(max_seconds=120.0, max_ejected_fraction=1.0))
    assert stats.record_failure("a", ["a", "b"], eject_now=True)
    assert stats.observe({"a", "b"}) == []  # Consul has not noticed anything yet
    assert stats.is_ejected("a", time.monotonic())
    assert stats.observe({"b"}) == []  # Consul reports it critical (or gone)
    assert stats.is_ejected("a", time.monotonic())
    assert stats.observe({"a", "b"}) == ["a"]  # and passing again: back in rotation
    assert not stats.is_ejected("a", time.monotonic())


def test_failure_ejection_is_not_held_for_consul() -> None:
    stats = StatsTable(
        EjectionPolicy(consecutive_failures=1, base_seconds=5.0, max_ejected_fraction=1.0)
    )
    assert stats.record_failure("a", ["a"])
    assert stats.observe({"a"}) == []
    assert stats.get("a").ejected_until - time.monotonic() <= 5.0
