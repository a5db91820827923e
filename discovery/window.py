"""Counts of events over the last minute, in one-second buckets, for the routing page.

The gateway bumps one counter per attempt on its hot path, so :meth:`MinuteCounter.add` is
a handful of list operations and no allocation; the bucket of a second that has passed is
reused when its index comes round again, so nothing ever needs sweeping. Readers (the admin
API, a few times a second at most) pay for the sums. The caller serializes writers.
"""

from __future__ import annotations

WINDOW_SECONDS = 60


class MinuteCounter:
    """Events per second over the last ``WINDOW_SECONDS`` seconds of a monotonic clock."""

    __slots__ = ("_counts", "_seconds")

    def __init__(self) -> None:
        self._counts = [0] * WINDOW_SECONDS
        # The whole second each bucket counts; -1: never used.
        self._seconds = [-1] * WINDOW_SECONDS

    def add(self, now: float) -> None:
        """Count one event at *now* (seconds of the same clock as every other call)."""
        second = int(now)
        i = second % WINDOW_SECONDS
        if self._seconds[i] == second:
            self._counts[i] += 1
        else:
            self._seconds[i] = second
            self._counts[i] = 1

    def series(self, now: float) -> list[int]:
        """The count of each of the last ``WINDOW_SECONDS`` seconds, oldest first, *now* last."""
        newest = int(now)
        out = []
        for second in range(newest - WINDOW_SECONDS + 1, newest + 1):
            i = second % WINDOW_SECONDS
            out.append(self._counts[i] if self._seconds[i] == second else 0)
        return out

    def by_age(self, now: float) -> list[int]:
        """The counts of the window's seconds, *now*'s first, without the zeros that end it.

        For the workers' shared snapshots (``gateway/admin/share.py``): one pass over the
        buckets, and short for an instance that saw no event lately.
        """
        newest = int(now)
        out = [0] * WINDOW_SECONDS
        for second, count in zip(self._seconds, self._counts, strict=True):
            age = newest - second
            if 0 <= age < WINDOW_SECONDS:
                out[age] = count
        while out and not out[-1]:
            out.pop()
        return out

    def total(self, now: float) -> int:
        """How many events the last ``WINDOW_SECONDS`` seconds saw, *now* included."""
        return sum(self.series(now))
