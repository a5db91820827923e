"""Watch sets for blocking queries: which index each parked query read, and who a write wakes.

Consul's state store hands each blocking query a memdb watch set: every index the query reads
adds a channel, and only a write to one of them wakes it. ``Watches`` does the same for the
registry's store. While a query runs under ``recording``, the store notes each index it reads
as a key: ("table", name), ("service", name) or ``EXTINCTION``. The query then parks on an event
of its own under those keys, and a write sets the events of the keys it moved. A query that
read no index parks under ``ANY``, which every write moves.

All methods but ``recording`` and ``note`` are called with the store's lock held.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

WatchKey = tuple[str, str]
EXTINCTION: WatchKey = ("extinction", "")
ANY: WatchKey = ("any", "")


class Waiter:
    """One parked blocking query: its keys, and the event a write (or its client leaving) sets."""

    __slots__ = ("event", "keys")

    def __init__(self, keys: frozenset[WatchKey]) -> None:
        self.event = threading.Event()
        self.keys = keys


class Watches:
    """The parked queries of one store, by watch key."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._waiters: dict[WatchKey, set[Waiter]] = {}

    @contextmanager
    def recording(self) -> Iterator[set[WatchKey]]:
        """Collect the keys this thread notes until the block ends."""
        keys: set[WatchKey] = set()
        self._local.keys = keys
        try:
            yield keys
        finally:
            self._local.keys = None

    def note(self, *keys: WatchKey) -> None:
        """Record keys a query read, if this thread is recording."""
        recording: set[WatchKey] | None = getattr(self._local, "keys", None)
        if recording is not None:
            recording.update(keys)

    def park(self, keys: Iterable[WatchKey]) -> Waiter:
        """A new waiter under ``keys`` (under ``ANY`` if there are none)."""
        waiter = Waiter(frozenset(keys) or frozenset((ANY,)))
        for key in waiter.keys:
            self._waiters.setdefault(key, set()).add(waiter)
        return waiter

    def unpark(self, waiter: Waiter) -> None:
        """Forget a waiter (a no-op once it was woken)."""
        for key in waiter.keys:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[key]

    def wake(self, moved: Iterable[WatchKey]) -> None:
        """Wake every waiter under one of the keys a write moved, or under ANY, and forget it:
        a woken query runs again and parks anew if it must wait on."""
        woken: set[Waiter] = set()
        for key in (ANY, *moved):
            woken.update(self._waiters.get(key, ()))
        for waiter in woken:
            self.unpark(waiter)
            waiter.event.set()

    def parked(self) -> int:
        """How many queries are parked now."""
        return len({waiter for waiters in self._waiters.values() for waiter in waiters})
