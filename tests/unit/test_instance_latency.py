"""What counts as an instance's latency: its own part of an attempt, never the client's.

Peak EWMA jumps to the slowest observation, so one client that uploads slowly would make a
healthy instance look seconds slow and lose its traffic. A fake clock drives each attempt.
"""

from __future__ import annotations

import pytest

from discovery.stats import DEFAULT_RTT, InstanceStats


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_time_waiting_for_the_clients_body_is_not_the_instances_latency(clock: FakeClock) -> None:
    stats = InstanceStats()
    with stats.track(10.0, clock) as attempt:
        clock.now += 0.002  # connect, send the head
        with attempt.waiting_for_client():
            clock.now += 8.0  # the client stalls
        clock.now += 0.001  # send what it sent
        with attempt.waiting_for_client():
            clock.now += 3.0
        clock.now += 0.004  # the instance answers
        assert attempt.answered() == pytest.approx(0.007)
    assert stats.ewma == pytest.approx(0.007)
    assert stats.outstanding == 0


def test_an_answer_while_the_client_is_still_sending_is_timed_without_that_wait(
    clock: FakeClock,
) -> None:
    stats = InstanceStats()
    with stats.track(10.0, clock) as attempt:
        clock.now += 0.003
        with attempt.waiting_for_client():
            clock.now += 5.0
            assert attempt.answered() == pytest.approx(0.003)  # an early answer, a 413 say
    assert 0.003 < stats.ewma <= DEFAULT_RTT  # 3 ms, below the first guess: it decays to it


@pytest.mark.parametrize("error", [ConnectionResetError, TimeoutError])
def test_an_attempt_the_client_ended_while_sending_leaves_the_estimate_alone(
    clock: FakeClock, error: type[Exception]
) -> None:
    stats = InstanceStats()
    with pytest.raises(error), stats.track(10.0, clock) as attempt:
        clock.now += 0.002
        with attempt.waiting_for_client():
            clock.now += 10.0
            raise error  # the client left, or its body timed out
    assert stats.ewma == DEFAULT_RTT
    assert stats.outstanding == 0


def test_an_attempt_without_an_answer_counts_the_instances_whole_part(clock: FakeClock) -> None:
    stats = InstanceStats()
    with pytest.raises(TimeoutError), stats.track(10.0, clock) as attempt:
        with attempt.waiting_for_client():
            clock.now += 4.0
        clock.now += 15.0  # the whole body sent; no answer within the try timeout
        raise TimeoutError
    assert stats.ewma == pytest.approx(15.0)
    assert stats.outstanding == 0
