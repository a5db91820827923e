"""Telling a check that has not run yet from one that ran and failed (discovery.first_run)."""

from __future__ import annotations

import math

import pytest

from discovery.first_run import FirstRuns, first_run_within
from discovery.model import Check, Instance


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def instance(*checks: Check) -> Instance:
    return Instance("web-1", "web", "127.0.0.1", 8000, "critical", checks=checks)


def http_check(status: str = "critical", output: str = "", modified: int = 7) -> Check:
    return Check(
        "service:web-1", "", status, output, "2s", "1s", create_index=7, modify_index=modified
    )


@pytest.mark.parametrize(
    ("interval", "timeout", "expected"),
    [("2s", "1s", 4.0), ("100ms", "1s", 3.0), ("10s", "", 21.0), ("", "1s", None), ("x", "", None)],
)
def test_a_first_run_comes_within_one_interval_and_a_timeout(
    interval: str, timeout: str, expected: float | None
) -> None:
    check = Check("c", "", "critical", "", interval, timeout)
    assert first_run_within(check) == expected


def test_a_failing_check_with_no_write_yet_waits_until_its_first_run_must_have_come() -> None:
    clock = Clock()
    runs = FirstRuns(clock)
    assert runs.waiting(instance(http_check())) == pytest.approx(504.0)
    clock.now += 3.9
    assert runs.waiting(instance(http_check())) == pytest.approx(504.0)  # from first seen
    clock.now += 0.1
    assert runs.waiting(instance(http_check())) is None  # it ran and failed, output held back


@pytest.mark.parametrize(
    "check",
    [
        http_check(output="HTTP GET http://127.0.0.1:8000/health: 500"),  # the output is written
        http_check(modified=9),  # written since it was registered
    ],
)
def test_a_check_consul_wrote_since_its_registration_has_run(check: Check) -> None:
    assert FirstRuns(Clock()).waiting(instance(check)) is None


def test_a_check_registered_again_is_timed_from_its_new_registration() -> None:
    clock = Clock()
    runs = FirstRuns(clock)
    runs.waiting(instance(http_check()))
    clock.now += 10
    again = Check("service:web-1", "", "critical", "", "2s", "1s", create_index=30, modify_index=30)
    assert runs.waiting(instance(again)) == pytest.approx(514.0)


def test_a_ttl_check_has_no_known_first_run_and_waits_for_the_whole_hold() -> None:
    ttl = Check("service:web-1", "", "critical", "", create_index=7, modify_index=7)
    assert FirstRuns(Clock()).waiting(instance(ttl)) == math.inf


def test_an_instance_waits_only_while_every_failing_check_may_not_have_run() -> None:
    ran = http_check(output="dial tcp: connection refused")
    serf = Check("serfHealth", "", "passing", "Agent alive and reachable")
    runs = FirstRuns(Clock())
    assert runs.waiting(instance(http_check(), ran)) is None
    assert runs.waiting(instance(http_check(), serf)) == pytest.approx(504.0)


def test_clear_forgets_when_checks_were_first_seen() -> None:
    clock = Clock()
    runs = FirstRuns(clock)
    runs.waiting(instance(http_check()))
    clock.now += 10
    runs.clear()
    assert runs.waiting(instance(http_check())) == pytest.approx(514.0)
