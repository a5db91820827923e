"""Exponential backoff with full jitter, shared by registration and the catalog watcher."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays that double from *base* up to *cap*, each drawn uniformly below the current bound.

    Full jitter keeps a fleet of instances that lost Consul together from retrying in lockstep.
    """

    base: float = 0.1
    cap: float = 5.0
    attempt: int = 0

    def next_delay(self) -> float:
        """Return how long to wait before the next attempt, and count the attempt."""
        bound = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return random.uniform(bound / 2, bound)

    def reset(self) -> None:
        """Start again from *base* after a success."""
        self.attempt = 0
