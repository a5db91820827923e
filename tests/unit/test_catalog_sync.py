"""The all-services reader against an in-memory Consul: what it reads, and how often."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from discovery import catalog_sync
from discovery import watcher as watcher_module
from discovery.blocking import Hooks
from discovery.catalog_sync import CatalogSync, SyncHooks
from discovery.model import Instance
from discovery.settings import ConsulSettings
from discovery.watcher import CatalogWatcher
from tests.polling import wait_for

SERVICES = 50


class FakeConsul:
    """One node's catalog with Consul's services and checks table indexes (no HTTP).

    Blocking reads wait on a condition until their table's index passes the one asked for.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.index = 1
        self.tables = {"services": 1, "checks": 1}
        self.instances: dict[str, tuple[str, int]] = {}  # ID -> (name, port)
        self.checks: dict[str, tuple[str, str, int]] = {}  # check ID -> (instance, status, index)
        self.reads: Counter[str] = Counter()
        self.fail_reads = 0
        self.catalog = SimpleNamespace(services=self._services)
        self.health = SimpleNamespace(state=self._state, service=self._service)

    def register(self, name: str, port: int, check: bool = True) -> None:
        with self.changed:
            instance = f"{name}-{port}"
            self.instances[instance] = (name, port)
            tables = {"services"}
            if check:
                self.checks[f"check-{instance}"] = (instance, "passing", self.index + 1)
                tables.add("checks")
            self._commit(tables)

    def move_and_register(self, moved: str, port: int, new: str) -> None:
        """A new port for one instance (no check written), then a new instance, in one go."""
        with self.changed:
            instance = f"{moved}-8000"
            self.instances[instance] = (moved, port)
            self._commit({"services"})
            self.register(new, 8000)

    def restart(self) -> None:
        """Lose every registration and start the indexes again, as a dev agent restarts."""
        with self.changed:
            self.instances.clear()
            self.checks.clear()
            self.index, self.tables = 1, {"services": 1, "checks": 1}
            self.changed.notify_all()

    def set_status(self, name: str, port: int, status: str) -> None:
        with self.changed:
            instance = f"{name}-{port}"
            self.checks[f"check-{instance}"] = (instance, status, self.index + 1)
            self._commit({"checks"})

    def _commit(self, tables: set[str]) -> None:
        self.index += 1
        for table in tables:
            self.tables[table] = self.index
        self.changed.notify_all()

    def _block(self, table: str, index: int | None) -> None:
        if index:
            self.changed.wait_for(lambda: self.tables[table] > index, timeout=0.2)

    def _services(self, index: int | None = None, wait: str = "") -> tuple[int, Any]:
        with self.changed:
            self._block("services", index)
            listing: dict[str, list[str]] = {name: [] for name, _ in self.instances.values()}
            return self.tables["services"], listing

    def _state(self, state: str, index: int | None = None, wait: str = "") -> tuple[int, Any]:
        with self.changed:
            self._block("checks", index)
            rows = [
                {
                    "Node": "n1",
                    "CheckID": check_id,
                    "ServiceID": instance,
                    "ServiceName": self.instances[instance][0],
                    "Status": status,
                    "ModifyIndex": modified,
                }
                for check_id, (instance, status, modified) in self.checks.items()
                if state == "any" or status == state
            ]
            return self.tables["checks"], rows

    def _service(self, name: str) -> tuple[int, Any]:
        with self.changed:
            self.reads[name] += 1
            if self.fail_reads:
                self.fail_reads -= 1
                raise requests.ConnectionError("refused")
            entries = []
            for instance, (service, port) in self.instances.items():
                if service != name:
                    continue
                checks = [
                    {"CheckID": check_id, "Name": "", "Status": status}
                    for check_id, (owner, status, _) in self.checks.items()
                    if owner == instance
                ]
                entries.append(
                    {
                        "Node": {"Node": "n1", "Address": "127.0.0.1"},
                        "Service": {"ID": instance, "Service": name, "Port": port},
                        "Checks": checks,
                    }
                )
            return self.index, entries


class Snapshot:
    """What the reader handed over to the watcher, merged as the watcher merges it."""

    def __init__(self) -> None:
        self.services: dict[str, list[Instance]] = {}
        self.errors: list[BaseException] = []

    def apply(self, read: Mapping[str, list[Instance]], names: set[str]) -> None:
        self.services = {k: v for k, v in {**self.services, **read}.items() if k in names}

    def passing(self, name: str) -> set[int]:
        return {i.port for i in self.services.get(name, []) if i.passing}


@pytest.fixture
def consul() -> FakeConsul:
    fake = FakeConsul()
    for n in range(SERVICES):
        fake.register(f"svc-{n}", 8000)
    return fake


@pytest.fixture
def snapshot(consul: FakeConsul) -> Iterator[Snapshot]:
    snapshot = Snapshot()
    status = Hooks(lambda index: None, snapshot.errors.append, lambda: None)
    hooks = SyncHooks(status, snapshot.apply, lambda: 0.0, lambda: "1s")
    sync = CatalogSync(ConsulSettings(), hooks, make=lambda settings: consul)
    sync.start()
    wait_for(lambda: len(snapshot.services) == SERVICES, 10, "every service read once")
    yield snapshot
    sync.stop()


def test_a_check_change_among_many_services_reads_only_its_service(
    consul: FakeConsul, snapshot: Snapshot
) -> None:
    assert set(consul.reads.values()) == {1}
    consul.set_status("svc-7", 8000, "critical")
    wait_for(lambda: not snapshot.passing("svc-7"), 10, "svc-7 to go critical")
    consul.register("svc-7", 8001)  # a new instance with its check, in one write
    wait_for(lambda: snapshot.passing("svc-7") == {8001}, 10, "the new instance")
    assert consul.reads["svc-7"] == 3
    assert sum(consul.reads.values()) == SERVICES + 2


def test_a_change_without_a_check_reads_every_service_once_more(
    consul: FakeConsul, snapshot: Snapshot
) -> None:
    consul.register("svc-3", 9000, check=False)
    wait_for(lambda: snapshot.passing("svc-3") == {8000, 9000}, 10, "the instance")
    wait_for(lambda: set(consul.reads.values()) == {2}, 10, "a second read of every service")


def test_a_failed_read_is_tried_again_and_reported(consul: FakeConsul, snapshot: Snapshot) -> None:
    consul.fail_reads = 2
    consul.set_status("svc-1", 8000, "critical")
    wait_for(lambda: not snapshot.passing("svc-1"), 10, "svc-1 to go critical")
    assert len(snapshot.errors) == 2


def test_after_consul_loses_its_state_the_watcher_holds_removals_for_the_grace_period(
    consul: FakeConsul, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = partial(CatalogSync, make=lambda settings: consul)
    monkeypatch.setattr(watcher_module, "CatalogSync", fake)
    watcher = CatalogWatcher(ConsulSettings(), wait=1.0, resync_grace=1.0)
    watcher.start()
    try:
        assert watcher.wait_ready(10)
        assert len(watcher.services) == SERVICES
        consul.restart()
        consul.register("svc-0", 8000)
        wait_for(lambda: watcher.resync_until > time.monotonic(), 10, "the hold to start")
        wait_for(lambda: consul.reads["svc-0"] >= 2, 10, "svc-0 read again")
        assert len(watcher.services) == SERVICES  # the gone services are held
        assert all(s.passing for s in watcher.services.values())
        wait_for(lambda: set(watcher.services) == {"svc-0"}, 10, "the hold to end")
    finally:
        watcher.stop()


def test_a_port_change_hidden_by_a_later_write_is_read_by_a_full_read_soon_after(
    consul: FakeConsul, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_sync, "SKIPPED_REREAD_EVERY", 0.1)
    monkeypatch.setattr(catalog_sync, "SKIPPED_READS_PER_SECOND", 10_000.0)
    # The services watch sees one move: the port change's index is skipped, and the
    # registration's own check explains the move itself.
    consul.move_and_register("svc-4", 9000, "svc-new")
    wait_for(lambda: snapshot.passing("svc-new") == {8000}, 10, "the new service")
    wait_for(lambda: snapshot.passing("svc-4") == {9000}, 10, "the new port")
