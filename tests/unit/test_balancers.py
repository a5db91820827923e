"""The balancing strategies, with seeded randomness and hand-set stats."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from discovery.balancer import STRATEGIES, LeastOutstanding, PeakEwma, RoundRobin, make_picker
from discovery.model import Instance
from discovery.stats import StatsTable

INSTANCES = [Instance(f"i{n}", "svc", "127.0.0.1", 9000 + n, "passing") for n in range(3)]


def test_round_robin_cycles_through_every_instance() -> None:
    picker = RoundRobin(StatsTable())
    assert [picker.pick(INSTANCES).id for _ in range(6)] == ["i0", "i1", "i2", "i0", "i1", "i2"]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_spreads_idle_load_over_all_instances(name: str) -> None:
    random.seed(7)
    picker = make_picker(name, StatsTable())
    counts = Counter(picker.pick(INSTANCES).id for _ in range(3000))
    assert set(counts) == {"i0", "i1", "i2"}
    assert min(counts.values()) > 600


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_single_candidate_is_always_chosen(name: str) -> None:
    assert make_picker(name, StatsTable()).pick(INSTANCES[:1]).id == "i0"


def test_least_outstanding_avoids_the_busy_instance() -> None:
    random.seed(1)
    stats = StatsTable()
    for _ in range(5):
        stats.get("i0").begin()
    picker = LeastOutstanding(stats)
    counts = Counter(picker.pick(INSTANCES).id for _ in range(600))
    # i0 loses every comparison it takes part in, so it is never chosen.
    assert counts["i0"] == 0


def test_peak_ewma_prefers_the_fast_instance() -> None:
    random.seed(2)
    stats = StatsTable()
    for inst, rtt in zip(INSTANCES, (0.200, 0.010, 0.010), strict=True):
        s = stats.get(inst.id)
        s.begin()
        s.end(rtt, stats.decay)
    counts = Counter(PeakEwma(stats).pick(INSTANCES).id for _ in range(600))
    assert counts["i0"] == 0


def test_peak_ewma_jumps_up_at_once_and_decays_slowly() -> None:
    stats = StatsTable(decay=10.0)
    s = stats.get("x")
    s.begin()
    s.end(0.5, stats.decay)
    assert s.ewma == 0.5
    s.begin()
    s.end(0.001, stats.decay)
    assert 0.4 < s.ewma <= 0.5  # a fast answer right after barely moves it


def test_unknown_strategy_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="fastest"):
        make_picker("fastest", StatsTable())
