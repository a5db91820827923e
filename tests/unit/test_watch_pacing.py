"""How the blocking-query loops pace their requests (no sockets, no real time: a fake clock
moves only when a fake query or a pause says so)."""

from __future__ import annotations

import itertools

import pytest

from discovery.blocking import Hooks, follow
from discovery.errors import SettingsError
from discovery.pacing import Pacer
from gateway.settings import GatewaySettings


class Clock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeStop:
    """Stands in for the loop's ``threading.Event``: a pause moves the clock, never sleeps."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pauses: list[float] = []
        self.stopped = False

    def is_set(self) -> bool:
        return self.stopped

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.pauses.append(timeout)
        self.clock.now += timeout
        return self.stopped


def run_loop(answers: list[tuple[float, int]], min_interval: float) -> tuple[list[float], FakeStop]:
    """Follow a query whose answers take the given (seconds, index); return the start times."""
    clock = Clock()
    stop = FakeStop(clock)
    starts: list[float] = []
    script = iter(answers)

    def query(index: int) -> tuple[int, object]:
        starts.append(clock.now)
        took, returned = next(script)
        clock.now += took
        stop.stopped = len(starts) == len(answers)
        return returned, []

    def handle(index: int, body: object) -> bool:
        return False

    hooks = Hooks(lambda index: None, lambda exc: None, lambda: None)
    follow(stop, query, handle, hooks, Pacer(min_interval, clock))  # type: ignore[arg-type]
    return starts, stop


def test_answers_that_come_back_at_once_are_asked_again_no_sooner_than_the_min_interval() -> None:
    # A datacenter that writes all the time: every blocking read returns within 5 ms.
    answers = [(0.001, 10)] + [(0.005, 11 + n) for n in range(20)]
    starts, stop = run_loop(answers, min_interval=0.05)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) == len(answers)
    assert min(gaps) == pytest.approx(0.05)
    assert stop.pauses  # the loop paused rather than asking again at once


def test_a_change_after_a_quiet_spell_is_asked_for_again_without_a_pause() -> None:
    # The first read, a 20 s block that ends with a change, then a change right behind it.
    answers = [(0.001, 10), (20.0, 11), (0.002, 12), (30.0, 12)]
    starts, stop = run_loop(answers, min_interval=0.05)
    assert starts[2] == pytest.approx(starts[1] + 20.0)  # no pause after the long block
    assert starts[3] == pytest.approx(starts[2] + 0.05)  # the burst's second read waited
    assert stop.pauses == pytest.approx([0.049, 0.048])


def test_a_zero_min_interval_never_pauses() -> None:
    starts, stop = run_loop([(0.001, 10 + n) for n in range(10)], min_interval=0.0)
    assert stop.pauses == []
    assert len(starts) == 10


@pytest.mark.parametrize(
    ("started_ago", "expected"), [(None, 0.0), (0.0, 0.1), (0.03, 0.07), (0.1, 0.0), (5.0, 0.0)]
)
def test_pacer_delay_counts_from_the_start_of_the_previous_request(
    started_ago: float | None, expected: float
) -> None:
    clock = Clock()
    pacer = Pacer(0.1, clock)
    if started_ago is not None:
        pacer.started()
        clock.now += started_ago
    assert pacer.delay() == pytest.approx(expected)


def test_a_negative_min_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        Pacer(-0.1)


def test_the_gateway_reads_its_watch_min_interval_from_the_environment() -> None:
    assert GatewaySettings.from_env({}).watch_min_interval == pytest.approx(0.05)
    env = {"GATEWAY_WATCH_MIN_INTERVAL": "0"}
    assert GatewaySettings.from_env(env).watch_min_interval == 0.0
    env = {"GATEWAY_WATCH_MIN_INTERVAL": "250ms"}
    assert GatewaySettings.from_env(env).watch_min_interval == pytest.approx(0.25)


@pytest.mark.parametrize("raw", ["2s", "-1ms", "fast"])
def test_a_bad_watch_min_interval_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="GATEWAY_WATCH_MIN_INTERVAL"):
        GatewaySettings.from_env({"GATEWAY_WATCH_MIN_INTERVAL": raw})
