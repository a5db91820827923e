"""Load-balancing strategies: small pure pickers chosen by name.

A picker chooses one instance from candidates that are already filtered (passing in Consul,
not ejected, not yet tried by this request). The stats it reads are fed by the caller. Its
``preview`` says what it would choose now, and why, without changing its state (the gateway's
``/_gateway/explain``).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from discovery.model import Instance
from discovery.stats import StatsTable


@dataclass(frozen=True)
class Preview:
    """What a picker would choose now: the *choice*, the instances it weighed, and its rule."""

    choice: Instance
    sampled: tuple[tuple[Instance, float], ...]  # (instance, cost) for cost-based pickers
    rule: str


class Picker(Protocol):
    """Chooses one of a non-empty sequence of candidates."""

    def pick(self, candidates: Sequence[Instance]) -> Instance: ...

    def preview(self, candidates: Sequence[Instance], rng: random.Random) -> Preview:
        """What :meth:`pick` would choose now, drawing from *rng*; changes no state."""
        ...


class RoundRobin:
    """Each candidate in turn."""

    def __init__(self, stats: StatsTable) -> None:
        # itertools.count is atomic under the GIL, so threads never get the same number.
        self._counter = itertools.count()
        self._last = -1  # the last number drawn, so that preview can tell the next one

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        self._last = n = next(self._counter)
        return candidates[n % len(candidates)]

    def preview(self, candidates: Sequence[Instance], rng: random.Random) -> Preview:
        n = self._last + 1
        return Preview(
            candidates[n % len(candidates)], (), f"round_robin: turn {n} of {len(candidates)}"
        )


class Random:
    """A uniformly random candidate."""

    def __init__(self, stats: StatsTable) -> None:
        pass

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        return random.choice(candidates)

    def preview(self, candidates: Sequence[Instance], rng: random.Random) -> Preview:
        return Preview(
            rng.choice(candidates), (), f"random: any of {len(candidates)}, uniformly; one draw"
        )


class _PowerOfTwo:
    """Draw two distinct candidates at random and keep the one with the lower cost."""

    rule = ""  # how the cost is weighed, in words (for preview)

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

    def preview(self, candidates: Sequence[Instance], rng: random.Random) -> Preview:
        if len(candidates) == 1:
            only = candidates[0]
            return Preview(only, ((only, self.cost(only)),), "the only candidate")
        a, b = rng.sample(list(candidates), 2)
        cost_a, cost_b = self.cost(a), self.cost(b)
        choice = a if cost_a <= cost_b else b
        return Preview(choice, ((a, cost_a), (b, cost_b)), self.rule)


class LeastOutstanding(_PowerOfTwo):
    """Power of two choices on requests in flight: cheap, and avoids herding."""

    rule = "least_outstanding: two drawn at random; fewer requests in flight wins (tie: first)"

    def cost(self, instance: Instance) -> float:
        return self.stats.get(instance.id).outstanding


class PeakEwma(_PowerOfTwo):
    """Power of two choices on peak-EWMA latency times requests in flight."""

    rule = "peak_ewma: two drawn at random; lower latency x (in flight + 1) wins (tie: first)"

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
