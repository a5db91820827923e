"""Keeps an in-memory snapshot of every service's instances, fed by Consul blocking queries.

Watching every service (the gateway) costs two blocking queries per process, whatever the
number of services: ``/v1/catalog/services`` and ``/v1/health/state/any``. A service is read
again, without blocking, only when its checks or its listing moved (see
:mod:`discovery.catalog_sync`). Watching a fixed list of services (``ServiceClient``, a few
dependencies of one service) keeps one ``/v1/health/service/<name>`` blocking query per name,
which sends far less than the whole datacenter's checks. Either way a change reaches the
snapshot within a round trip or two, with no polling interval, and a read error never empties
a service: readers keep the last-known-good snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from discovery import snapshot_file
from discovery.acl_filter import AclFilterAlarm
from discovery.blocking import Hooks, follow, next_index
from discovery.catalog_diff import IGNORED_SERVICES
from discovery.catalog_sync import CatalogSync, SyncHooks
from discovery.consul_client import make_client
from discovery.durations import format_duration
from discovery.first_run import FirstRuns
from discovery.model import Instance, Service
from discovery.pacing import Pacer
from discovery.settings import ConsulSettings

log = logging.getLogger(__name__)

# The shortest wait sent with a blocking query. Consul reads ``wait=0`` (or a missing wait) as
# its 5-minute default (``blockingQuery`` in agent/consul/rpc.go) while py-consul's read
# timeout adds only the wait it was given, so a wait rounded down to ``0ms`` would hold the
# query for minutes and time the client out after a few seconds.
MIN_WAIT = 1.0
# Successive requests of one blocking query start at least this far apart (discovery.pacing):
# an isolated change is read at once, the changes of a burst at most this much later.
DEFAULT_MIN_INTERVAL = 0.05

Listener = Callable[[Mapping[str, Service]], None]
__all__ = ["IGNORED_SERVICES", "CatalogWatcher", "Listener", "next_index"]


class CatalogWatcher:
    """Watches all services (or a fixed list of them) and publishes immutable snapshots."""

    def __init__(
        self,
        consul: ConsulSettings,
        services: Iterable[str] | None = None,
        wait: float = 30.0,
        snapshot_path: Path | None = None,
        resync_grace: float = 15.0,
        min_interval: float = DEFAULT_MIN_INTERVAL,
    ) -> None:
        self.consul = consul
        self.wait = wait
        # Between two requests of one blocking query (discovery.pacing).
        self.min_interval = min_interval
        self.resync_grace = resync_grace
        # Until this time, removals are held back: Consul lost its state and services are
        # still registering again (see _hold_during_resync).
        self.resync_until = 0.0
        # While a resync is held: which failing checks may not have run yet, and when to look
        # at the services holding such an instance again (see _hold_during_resync).
        self.first_runs = FirstRuns()
        self._recheck: dict[str, float] = {}
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
        self._hooks = Hooks(self._on_success, self._on_error, self._start_resync)
        self.acl_filter = AclFilterAlarm(consul.url)
        self._sync: CatalogSync | None = None

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
                hooks = SyncHooks(
                    self._hooks,
                    self._apply,
                    self._hold_until,
                    self._wait_param,
                    self.acl_filter,
                    self._due_rechecks,
                )
                self._sync = CatalogSync(self.consul, hooks, min_interval=self.min_interval)
                self._sync.start()
            else:
                for name in self.fixed:
                    self._start_service_watch(name)

    def stop(self) -> None:
        """Ask every watch thread to end; they are daemons, so none blocks process exit."""
        self._stop.set()
        for event in list(self._watches.values()):
            event.set()
        if self._sync is not None:
            self._sync.stop()

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
            # Watches whose last answer Consul shortened by ACLs: the token cannot see it all.
            "filtered_by_acls": self.acl_filter.filtered,
        }

    # -- a fixed list of services: one blocking query each --------------------------------

    def _start_service_watch(self, name: str) -> None:
        stop = threading.Event()
        self._watches[name] = stop
        threading.Thread(
            target=self._watch_service, args=(name, stop), name=f"watch-{name}", daemon=True
        ).start()

    def _watch_service(self, name: str, stop: threading.Event) -> None:
        client = make_client(self.consul)

        def query(index: int) -> tuple[str | int | None, object]:
            answer = client.health.service(name, index=index, wait=self._wait_param())
            self.acl_filter.observe(f"/v1/health/service/{name}", client.filtered_by_acls)
            return answer  # type: ignore[no-any-return]

        follow(
            stop,
            query,
            lambda _, entries: self._on_service(name, entries, stop),
            self._hooks,
            Pacer(self.min_interval),
        )

    def _on_service(self, name: str, entries: object, stop: threading.Event) -> bool:
        instances = (
            [Instance.from_health_entry(e) for e in entries] if isinstance(entries, list) else []
        )
        with self._lock:
            if stop.is_set():
                return False
            held = self._hold_during_resync(name, instances)
            self._synced.add(name)
            self._publish({**self.services, name: Service.of(name, instances)})
            self._ready_when_synced(set(self._watches))
        return held

    # -- every service: two blocking queries in all (discovery.catalog_sync) ----------------

    def _apply(self, read: Mapping[str, list[Instance]], names: set[str]) -> None:
        """Publish services just read; drop those Consul no longer lists (unless held)."""
        with self._lock:
            if self._stop.is_set():
                return
            keep = names | set(self.services) if time.monotonic() < self.resync_until else names
            services = {k: v for k, v in self.services.items() if k in keep}
            for name, instances in read.items():
                if name in keep:
                    self._hold_during_resync(name, instances)
                    services[name] = Service.of(name, instances)
                    self._synced.add(name)
            self._synced &= keep
            if services != self.services:
                self._publish(services)
            self._ready_when_synced(keep)

    # -- state changes shared by both modes ------------------------------------------------

    def _hold_until(self) -> float:
        return self.resync_until

    def _wait_param(self) -> str:
        """The blocking wait; while a resync is held, end it when the hold ends or a held
        instance is due a second look (or at once after, as :data:`MIN_WAIT` allows)."""
        now = time.monotonic()
        remaining = self.resync_until - now
        wait = min(self.wait, remaining) if remaining > 0 else self.wait
        with self._lock:
            if self._recheck:
                wait = min(wait, min(self._recheck.values()) - now)
        return format_duration(max(wait, MIN_WAIT))

    def _due_rechecks(self, now: float) -> tuple[set[str], float | None]:
        """Services due a second look at a held instance, and when the next one is due."""
        with self._lock:
            due = {name for name, at in self._recheck.items() if at <= now}
            for name in due:
                del self._recheck[name]
            return due, min(self._recheck.values(), default=None)

    def _start_resync(self) -> None:
        """The index went backwards: Consul restarted and lost its registrations."""
        if self.resync_until < time.monotonic() and self.resync_grace > 0:
            log.warning(
                "Consul's index went backwards; holding removals for %.0fs while services register again",
                self.resync_grace,
            )
            self.resync_until = time.monotonic() + self.resync_grace

    def _hold_during_resync(self, name: str, instances: list[Instance]) -> bool:
        """While a resync is held, keep passing instances Consul has not reported back yet.

        A restarted Consul agent in dev mode (or one that lost its data) briefly knows no
        service at all, and instances that register again start critical until their first
        check runs. Acting on that would empty every route for a few seconds, so until the
        grace period ends the last-known-good copy of an instance stands in for one that is
        missing or whose failing checks may not have run yet. A check that ran and failed
        counts as soon as Consul's answer shows it ran, even with its output still held back
        (:mod:`discovery.first_run`); the service is looked at again when that becomes
        certain. Returns whether the grace period is still on. Called with the lock held.
        """
        self._recheck.pop(name, None)
        if time.monotonic() >= self.resync_until:
            self.first_runs.clear()
            self._recheck.clear()
            return False
        if name not in self.services:
            return False
        current = {i.id: i for i in instances}
        for old in self.services[name].passing:
            new = current.get(old.id)
            if new is not None and new.passing:
                continue
            due = None if new is None else self.first_runs.waiting(new)
            if new is None or due is not None:
                current[old.id] = old
            if due is not None and due != float("inf"):
                self._recheck[name] = min(self._recheck.get(name, due), due)
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
