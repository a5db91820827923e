"""Load-balancing strategies: small pure pickers chosen by name.

A picker chooses one instance from candidates that are already filtered (passing in Consul,
not ejected, not yet tried by this request). The stats it reads are fed by the caller.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from discovery.model import Instance
from discovery.stats import StatsTable


class Picker(Protocol):
    """Chooses one of a non-empty sequence of candidates."""

    def pick(self, candidates: Sequence[Instance]) -> Instance: ...


class RoundRobin:
    """Each candidate in turn."""

    def __init__(self, stats: StatsTable) -> None:
        # itertools.count is atomic under the GIL, so threads never get the same number.
        self._counter = itertools.count()

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        return candidates[next(self._counter) % len(candidates)]


class Random:
    """A uniformly random candidate."""

    def __init__(self, stats: StatsTable) -> None:
        pass

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        return random.choice(candidates)


class _PowerOfTwo:
    """Draw two distinct candidates at random and keep the one with the lower cost."""

    def __init__(self, stats: StatsTable) -> None:
        self.stats = stats

    def cost(self, instance: Instance) -> float:
        raise NotImplementedError

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        n = len(candidates)
        if n == 1:
            return candidates[0]
        # Two distinct indices from two random() calls: a third of random.sample's cost.
        i = int(random.random() * n)
        j = int(random.random() * (n - 1))
        a, b = candidates[i], candidates[j + 1 if j >= i else j]
        return a if self.cost(a) <= self.cost(b) else b


class LeastOutstanding(_PowerOfTwo):
    """Power of two choices on requests in flight: cheap, and avoids herding."""

    def cost(self, instance: Instance) -> float:
        return self.stats.get(instance.id).outstanding


class PeakEwma(_PowerOfTwo):
    """Power of two choices on peak-EWMA latency times requests in flight."""

    def cost(self, instance: Instance) -> float:
        return self.stats.get(instance.id).cost()


STRATEGIES: dict[str, Callable[[StatsTable], Picker]] = {
    "round_robin": RoundRobin,
    "random": Random,
    "least_outstanding": LeastOutstanding,
    "peak_ewma": PeakEwma,
}
DEFAULT_STRATEGY = "least_outstanding"


def make_picker(name: str, stats: StatsTable) -> Picker:
    """Build the strategy called *name*; raise ValueError for an unknown name."""
    try:
        return STRATEGIES[name](stats)
    except KeyError:
        raise ValueError(
            f"unknown balancer {name!r}; choose one of {', '.join(STRATEGIES)}"
        ) from None
