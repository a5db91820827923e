"""Follows every service with two blocking queries and reads only the services that moved.

Three threads per process, whatever the number of services, and so three connections to
Consul: two blocking queries (``/v1/catalog/services`` and ``/v1/health/state/any``) feed a
queue; a reader thread turns their answers into re-reads (:mod:`discovery.catalog_diff`) and
reads each service with a non-blocking ``/v1/health/service/<name>``, one at a time. On the
double and on a local agent a read takes about a millisecond, and a pool of readers measured
no faster on two cores. Services named by a fingerprint change are read before those of a
full re-read, so a change still lands within a few reads while a full re-read runs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from discovery.acl_filter import AclFilterAlarm
from discovery.backoff import Backoff
from discovery.blocking import Hooks, follow
from discovery.catalog_diff import CatalogDiff, Changes, WorkList
from discovery.consul_client import make_client
from discovery.fingerprints import CheckRow
from discovery.model import Instance
from discovery.pacing import Pacer
from discovery.registration import CONSUL_ERRORS
from discovery.settings import ConsulSettings

log = logging.getLogger(__name__)

# While a full re-read runs, hand over what was read at least this often.
PUBLISH_EVERY = 0.05
# Wait at most this long for the watches before looking at the clock-driven work again.
IDLE_TICK = 1.0
# A full re-read for skipped indexes (see Changes.skipped) comes at most this often, and at
# most at this many reads per second on average, so a busy catalog cannot turn it into polling.
SKIPPED_REREAD_EVERY = 10.0
SKIPPED_READS_PER_SECOND = 20.0
Event = tuple[str, int, object]  # ("listing" or "checks", index, body)


@dataclass(frozen=True)
class SyncHooks:
    """How the reader hands its results to the watcher, and learns about a resync hold."""

    status: Hooks
    # (instances read per service, names Consul lists now)
    apply: Callable[[Mapping[str, list[Instance]], set[str]], None]
    hold_until: Callable[[], float]
    wait_param: Callable[[], str]
    # Told, after every answer of a watch, whether Consul filtered it by ACLs.
    acl: AclFilterAlarm | None = None
    # Given the time: the services due to be read again, and when the next one is due.
    recheck: Callable[[float], tuple[set[str], float | None]] | None = None


class CatalogSync:
    """The all-services mode of :class:`discovery.watcher.CatalogWatcher`."""

    def __init__(
        self,
        consul: ConsulSettings,
        hooks: SyncHooks,
        make: Callable[[ConsulSettings], Any] = make_client,
        min_interval: float = 0.0,
    ) -> None:
        self.consul = consul
        self.hooks = hooks
        self.make = make  # tests pass a fake Consul client here
        self.min_interval = min_interval  # between two requests of one watch (Pacer)
        self.diff = CatalogDiff()
        self._events: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._stop = threading.Event()

    def start(self) -> None:
        """Start the two watch threads and the reader thread."""
        for name, target in (
            ("watch-catalog", self._watch_catalog),
            ("watch-health", self._watch_health),
            ("catalog-reader", self._read_loop),
        ):
            threading.Thread(target=target, name=name, daemon=True).start()

    def stop(self) -> None:
        """Ask every thread to end; blocking queries end with their wait."""
        self._stop.set()
        self._events.put(None)

    def _watch_catalog(self) -> None:
        client = self.make(self.consul)

        def query(index: int) -> tuple[str | int | None, object]:
            answer = client.catalog.services(index=index, wait=self.hooks.wait_param())
            self._observe_acl("/v1/catalog/services", client)
            return answer  # type: ignore[no-any-return]

        follow(
            self._stop,
            query,
            lambda index, body: self._queue(("listing", index, body)),
            self.hooks.status,
            Pacer(self.min_interval),
        )

    def _watch_health(self) -> None:
        client = self.make(self.consul)

        def query(index: int) -> tuple[str | int | None, object]:
            answer = client.health.state("any", index=index, wait=self.hooks.wait_param())
            self._observe_acl("/v1/health/state/any", client)
            return answer  # type: ignore[no-any-return]

        follow(
            self._stop,
            query,
            lambda index, body: self._queue(("checks", index, body)),
            self.hooks.status,
            Pacer(self.min_interval),
        )

    def _observe_acl(self, path: str, client: Any) -> None:
        if self.hooks.acl is not None:
            self.hooks.acl.observe(path, bool(getattr(client, "filtered_by_acls", False)))

    def _queue(self, event: Event) -> bool:
        self._events.put(event)
        return False

    def _read_loop(self) -> None:
        # Nothing may end this thread but stop(): without it the snapshot would freeze.
        while not self._stop.is_set():
            try:
                reader = Reader(self.make(self.consul), self.diff, self.hooks)
                while not self._stop.is_set():
                    reader.step(self._take_events(reader.idle_timeout()))
            except Exception:
                log.exception("the catalog reader failed; starting it again")
                self._stop.wait(1.0)

    def _take_events(self, timeout: float) -> Changes:
        """Apply every queued answer of the watches, waiting up to *timeout* for the first."""
        changes = Changes()
        try:
            event = self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
            while event is not None:
                changes.merge(self._on_event(*event))
                event = self._events.get_nowait()
        except queue.Empty:
            pass
        return changes

    def _on_event(self, kind: str, index: int, body: object) -> Changes:
        now = time.monotonic()
        if kind == "listing":
            listing: Mapping[str, Any] = body if isinstance(body, dict) else {}
            return self.diff.on_listing(index, listing, now)
        rows = [CheckRow.from_json(c) for c in body] if isinstance(body, list) else []
        return self.diff.on_checks(index, rows)


class Reader:
    """The reader thread's state: what to read, what was read, and when to hand it over."""

    def __init__(self, client: Any, diff: CatalogDiff, hooks: SyncHooks) -> None:
        self.client, self.diff, self.hooks = client, diff, hooks
        self.work = WorkList()
        self.read: dict[str, list[Instance]] = {}
        self.applied: set[str] | None = None  # the names the watcher was last given
        self.backoff, self.retry_at, self.last_publish = Backoff(base=0.05, cap=2.0), 0.0, 0.0
        self.urgent_read = False  # something was read for a change: hand it over at once
        self.full_read_at = time.monotonic()  # the last full re-read began
        self.reread_at: float | None = None  # a full re-read is due then (skipped indexes)
        self.held = time.monotonic() < hooks.hold_until()
        self.recheck_at: float | None = None  # a held instance is due a second look then
        if diff.ready:  # a new reader after a failure: the old one's work is lost
            self.work.add(diff.names, urgent=False)

    def idle_timeout(self) -> float:
        """How long to wait for the watches before doing timed work."""
        now = time.monotonic()
        if self.work and now >= self.retry_at:
            return 0.0
        wakes = [now + IDLE_TICK]
        if self.work:
            wakes.append(self.retry_at)
        if (deadline := self.diff.deadline) is not None:
            wakes.append(deadline)
        if self.held:
            wakes.append(self.hooks.hold_until())
        if self.reread_at is not None:
            wakes.append(self.reread_at)
        if self.recheck_at is not None:
            wakes.append(self.recheck_at)
        return max(0.0, min(wakes) - now)

    def step(self, changes: Changes) -> None:
        """Queue what *changes* asks for, read one service, hand over what is due."""
        if self.diff.probe_wanted:
            changes.merge(self._probe())
        now = time.monotonic()
        changes.merge(self.diff.expire(now))
        if self.hooks.recheck is not None:
            due, self.recheck_at = self.hooks.recheck(now)
            changes.dirty |= due
        holding = now < self.hooks.hold_until()
        if self.held and not holding:
            # The hold ended: read everything again and drop what Consul no longer lists.
            changes.everything, self.applied = True, None
        self.held = holding
        if changes.skipped and self.reread_at is None:
            spacing = max(SKIPPED_REREAD_EVERY, len(self.diff.names) / SKIPPED_READS_PER_SECOND)
            self.reread_at = max(now, self.full_read_at + spacing)
        if self.reread_at is not None and now >= self.reread_at:
            changes.everything = True
        self.work.add(changes.dirty, urgent=True)
        if changes.everything:
            self.work.add(self.diff.names, urgent=False)
            self.full_read_at, self.reread_at = now, None
        if self.work and now >= self.retry_at:
            self._read_next()
        self._publish_if_due(now)

    def _read_next(self) -> None:
        name, urgent = self.work.pop()
        try:
            index, entries = self.client.health.service(name)
        except CONSUL_ERRORS as exc:
            self.hooks.status.on_error(exc)
            self.work.add({name}, urgent=urgent)
            self.retry_at = time.monotonic() + self.backoff.next_delay()
            return
        self.backoff.reset()
        self.hooks.status.on_success(int(index or 0))
        instances = [Instance.from_health_entry(e) for e in entries or ()]
        self.diff.on_read(name, {i.node for i in instances})
        self.read[name] = instances
        self.urgent_read |= urgent

    def _publish_if_due(self, now: float) -> None:
        names = self.diff.names
        due = not self.work or self.urgent_read or now - self.last_publish >= PUBLISH_EVERY
        if not due or self.work.urgent or not self.diff.ready:
            return
        if self.read or names != self.applied:
            self.hooks.apply(self.read, names)
            self.diff.forget((self.applied or set()) - names)
            self.read, self.applied, self.last_publish = {}, names, time.monotonic()
            self.urgent_read = False

    def _probe(self) -> Changes:
        """Read the checks table's index without blocking (few checks are critical)."""
        try:
            index, _ = self.client.health.state("critical")
        except CONSUL_ERRORS as exc:
            self.hooks.status.on_error(exc)
            return self.diff.on_probe(None)  # the move waits for its deadline instead
        return self.diff.on_probe(int(index or 0))
