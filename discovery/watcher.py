"""Keeps an in-memory snapshot of every service's instances, fed by Consul blocking queries.

One thread watches ``/v1/catalog/services`` to learn which services exist; one thread per
service watches ``/v1/health/service/<name>``. Each returns as soon as Consul's index moves, so
a change reaches the snapshot within one round trip, with no polling interval. Index handling
follows Consul's "Blocking Queries" implementation notes
(https://developer.hashicorp.com/consul/api-docs/features/blocking#implementation-details):
reset to 0 when the index goes backwards, never go below 1, back off with jitter on errors.
A read error never empties a service: readers keep the last-known-good snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from discovery import snapshot_file
from discovery.backoff import Backoff
from discovery.consul_client import make_client
from discovery.durations import format_duration
from discovery.model import Instance, Service
from discovery.registration import CONSUL_ERRORS
from discovery.settings import ConsulSettings

log = logging.getLogger(__name__)

Listener = Callable[[Mapping[str, Service]], None]
# Consul registers itself as a service on server agents; it is never an upstream.
IGNORED_SERVICES = frozenset({"consul"})


def _never_checked(instance: Instance) -> bool:
    """True if every failing check of *instance* is still waiting for its first run."""
    return all(c.status == "passing" or not c.output for c in instance.checks)


def next_index(previous: int, returned: int) -> int:
    """The index for the next blocking call, per Consul's index-reset rules."""
    if returned < previous:
        return 0
    return max(returned, 1)


class CatalogWatcher:
    """Watches all services (or a fixed list of them) and publishes immutable snapshots."""

    def __init__(
        self,
        consul: ConsulSettings,
        services: Iterable[str] | None = None,
        wait: float = 30.0,
        snapshot_path: Path | None = None,
        resync_grace: float = 15.0,
    ) -> None:
        self.consul = consul
        self.wait = wait
        self.resync_grace = resync_grace
        # Until this time, removals are held back: Consul lost its state and services are
        # still registering again (see _hold_during_resync).
        self.resync_until = 0.0
        self.snapshot_path = snapshot_path
        self.fixed = frozenset(services) if services is not None else None
        # Replaced, never mutated: readers on the hot path take a reference without a lock.
        self.services: Mapping[str, Service] = {}
        self.from_snapshot_file = False
        self.last_success: float | None = None
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self.last_index = 0
        self._synced: set[str] = set()
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._watches: dict[str, threading.Event] = {}

    def add_listener(self, listener: Listener) -> None:
        """Call *listener* with the new snapshot after every change."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Load the snapshot file if one is configured, then start the watch threads."""
        if self.snapshot_path is not None:
            loaded = snapshot_file.load(self.snapshot_path)
            if loaded:
                self.from_snapshot_file = True
                self._publish(loaded)
        with self._lock:
            if self.fixed is None:
                self._spawn("catalog", self._watch_catalog)
            else:
                for name in self.fixed:
                    self._start_service_watch(name)

    def stop(self) -> None:
        """Ask every watch thread to end; they are daemons, so none blocks process exit."""
        self._stop.set()
        for event in self._watches.values():
            event.set()

    def wait_ready(self, timeout: float) -> bool:
        """Block until every known service has been read from Consul once."""
        return self._ready.wait(timeout)

    @property
    def has_data(self) -> bool:
        """True once the snapshot holds something to route from: a full read, or the file."""
        return self._ready.is_set() or self.from_snapshot_file

    def status(self) -> dict[str, object]:
        """Freshness of the snapshot, for ``/_gateway/health`` and metrics."""
        now = time.monotonic()
        return {
            "consul": self.consul.url,
            "fresh": self.last_success is not None and self.failing_since is None,
            "last_sync_age_seconds": None
            if self.last_success is None
            else round(now - self.last_success, 3),
            "failing_for_seconds": None
            if self.failing_since is None
            else round(now - self.failing_since, 3),
            "last_error": self.last_error,
            "last_index": self.last_index,
            "from_snapshot_file": self.from_snapshot_file,
            "services": len(self.services),
        }

    # -- threads ---------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        threading.Thread(target=target, name=f"watch-{name}", daemon=True).start()

    def _start_service_watch(self, name: str) -> None:
        stop = threading.Event()
        self._watches[name] = stop
        self._spawn(name, lambda: self._watch_service(name, stop))

    def _watch_catalog(self) -> None:
        client = make_client(self.consul)
        self._blocking_loop(
            self._stop,
            lambda index: client.catalog.services(index=index, wait=self._wait_param()),
            self._on_catalog,
        )

    def _watch_service(self, name: str, stop: threading.Event) -> None:
        client = make_client(self.consul)
        self._blocking_loop(
            stop,
            lambda index: client.health.service(name, index=index, wait=self._wait_param()),
            lambda entries: self._on_service(name, entries, stop),
        )

    def _blocking_loop(
        self,
        stop: threading.Event,
        query: Callable[[int], tuple[str | int, object]],
        handle: Callable[[object], bool],
    ) -> None:
        # A short cap: after an outage the watcher is back within ~2 s of Consul.
        index, seen, backoff, held = 0, 0, Backoff(base=0.05, cap=2.0), False
        while not stop.is_set() and not self._stop.is_set():
            try:
                raw_index, result = query(index)
            except CONSUL_ERRORS as exc:
                self._on_error(exc)
                # Ask without blocking next time: an agent that restarted has a lower index
                # and would hold a query for the old one until its wait ran out.
                index = 0
                stop.wait(backoff.next_delay())
                continue
            backoff.reset()
            returned = int(raw_index or 0)
            if returned < seen:
                self._start_resync()
            if returned != index or index == 0 or held:
                held = handle(result)
            index = seen = next_index(index, returned)
            self._on_success(index)

    # -- state changes ---------------------------------------------------------------------

    def _wait_param(self) -> str:
        """The blocking wait; while a resync is held, end it when the hold ends."""
        remaining = self.resync_until - time.monotonic()
        return format_duration(min(self.wait, remaining) if remaining > 0 else self.wait)

    def _start_resync(self) -> None:
        """The index went backwards: Consul restarted and lost its registrations."""
        if self.resync_until < time.monotonic() and self.resync_grace > 0:
            log.warning(
                "Consul's index went backwards; holding removals for %.0fs while services register again",
                self.resync_grace,
            )
            self.resync_until = time.monotonic() + self.resync_grace

    def _on_catalog(self, result: object) -> bool:
        names = set(result) - IGNORED_SERVICES if isinstance(result, dict) else set()
        held = time.monotonic() < self.resync_until
        if held:
            names |= set(self._watches)
        with self._lock:
            for name in set(self._watches) - names:
                self._watches.pop(name).set()
                self._synced.discard(name)
            new = names - set(self._watches)
            for name in sorted(new):
                self._start_service_watch(name)
            if set(self.services) - names:
                self._publish({k: v for k, v in self.services.items() if k in names})
            self._ready_when_synced(names)
        return held

    def _on_service(self, name: str, entries: object, stop: threading.Event) -> bool:
        instances = (
            [Instance.from_health_entry(e) for e in entries] if isinstance(entries, list) else []
        )
        with self._lock:
            if stop.is_set():
                return False  # the catalog already dropped this service
            held = self._hold_during_resync(name, instances)
            self._synced.add(name)
            self._publish({**self.services, name: Service.of(name, instances)})
            self._ready_when_synced(set(self._watches))
        return held

    def _hold_during_resync(self, name: str, instances: list[Instance]) -> bool:
        """While a resync is held, keep passing instances Consul has not reported back yet.

        A restarted Consul agent in dev mode (or one that lost its data) briefly knows no
        service at all, and instances that register again start critical until their first
        check runs. Acting on that would empty every route for a few seconds, so until the
        grace period ends the last-known-good copy of an instance stands in for one that is
        missing or whose failing checks have never run (empty output). A check that ran and
        failed counts at once. Returns whether the grace period is still on.
        """
        if time.monotonic() >= self.resync_until or name not in self.services:
            return False
        current = {i.id: i for i in instances}
        for old in self.services[name].passing:
            new = current.get(old.id)
            if new is None or (not new.passing and _never_checked(new)):
                current[old.id] = old
        instances[:] = list(current.values())
        return True

    def _ready_when_synced(self, names: set[str]) -> None:
        """Called with the lock held (or before any thread runs)."""
        if names <= self._synced and not self._ready.is_set():
            self._ready.set()
            self.from_snapshot_file = False
            if self.snapshot_path is not None:
                snapshot_file.save(self.snapshot_path, self.services)

    def _publish(self, services: dict[str, Service]) -> None:
        """Swap in a new snapshot; called with the lock held, so updates never interleave."""
        self.services = services
        for listener in self._listeners:
            listener(services)
        if self.snapshot_path is not None and self._ready.is_set():
            snapshot_file.save(self.snapshot_path, services)

    def _on_success(self, index: int) -> None:
        self.last_success = time.monotonic()
        self.last_index = max(self.last_index, index)
        if self.failing_since is not None:
            log.info("Consul at %s answers again", self.consul.url)
        self.failing_since = None
        self.last_error = None

    def _on_error(self, exc: BaseException) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.warning(
                "Consul at %s: %s; serving the last-known-good snapshot", self.consul.url, exc
            )
        self.last_error = f"{type(exc).__name__}: {exc}"
