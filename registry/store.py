"""The in-memory catalog of one node, with Consul's raft-style indexes and blocking reads.

Every write takes the next value of a monotonic index and records it where Consul's state store
would (agent/consul/state/catalog.go): per table ("nodes", "services", "checks"), per service
name, and as the "service last extinction" index when a name's last instance goes. Reads answer
with the index that covers them, so a blocking query wakes when its result may have changed.
All access goes through one re-entrant lock.

A blocking query wakes only for the writes that move an index it read (``watches``), so a
write to one service never wakes the watchers of another, and a parked query holds no lock.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from .disconnects import Cancel
from .model import (
    CONSUL_SERVICE,
    CRITICAL,
    PASSING,
    SERF_CHECK_ID,
    SERF_CHECK_NAME,
    SERF_CHECK_OUTPUT,
    SERVER_RPC_PORT,
    Check,
    Node,
    Service,
)
from .watches import EXTINCTION, Watches, WatchKey

R = TypeVar("R")


class Store:
    """Services and checks of the node; every method is safe to call from any thread."""

    def __init__(self, node: Node, check_update_interval: float = 0.0) -> None:
        self.node = node
        #: Consul's ``check_update_interval``; 0 shows a new output at once (see set_status).
        self.check_update_interval = check_update_interval
        self.lock = threading.RLock()
        self._watches = Watches()
        self._index = 0
        self._tables = {"nodes": 0, "services": 0, "checks": 0}
        self._service_index: dict[str, int] = {}
        self._extinction = 0
        self._services: dict[str, Service] = {}
        self._checks: dict[str, Check] = {}
        self._bootstrap()

    # Reads: call with ``lock`` held when several must agree.

    def services(self) -> list[Service]:
        """All service instances, ordered by ID."""
        with self.lock:
            return [self._services[k] for k in sorted(self._services)]

    def service(self, service_id: str) -> Service | None:
        """One service instance by ID."""
        with self.lock:
            return self._services.get(service_id)

    def checks(self) -> list[Check]:
        """All checks, node checks included, ordered by ID."""
        with self.lock:
            return [self._checks[k] for k in sorted(self._checks)]

    def check(self, check_id: str) -> Check | None:
        """One check by ID."""
        with self.lock:
            return self._checks.get(check_id)

    def table_index(self, *tables: str) -> int:
        """The highest index of the named tables (``maxIndexTxn``)."""
        with self.lock:
            self._watches.note(*(("table", t) for t in tables))
            return max(self._tables[t] for t in tables)

    def service_index(self, name: str, exists: bool, with_checks: bool) -> int:
        """The index a query for one service name reports (``maxIndexAndWatchChForService``)."""
        with self.lock:
            # Whichever branch answers, the name appearing or going moves the answer.
            self._watches.note(("service", name))
            if not exists and self._extinction:
                self._watches.note(EXTINCTION)
                return self._extinction
            if name in self._service_index:
                return self._service_index[name]
            self._watches.note(EXTINCTION)
            tables = ("nodes", "services", "checks") if with_checks else ("nodes", "services")
            return self.table_index(*tables)

    def block(
        self,
        query: Callable[[], R],
        done: Callable[[R], bool],
        timeout: float,
        cancel: Cancel | None = None,
    ) -> R:
        """Run ``query`` until ``done`` accepts its result, ``timeout`` seconds pass or
        ``cancel`` is set (its client left: the result returned then is of no use)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                with self._watches.recording() as keys:
                    result = query()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or done(result) or (cancel is not None and cancel.is_set()):
                    return result
                waiter = self._watches.park(keys)
            try:
                if cancel is None:
                    waiter.event.wait(remaining)
                else:
                    with cancel.armed(waiter.event.set):
                        waiter.event.wait(remaining)
            finally:
                with self.lock:
                    self._watches.unpark(waiter)

    def parked(self) -> int:
        """How many blocking queries are waiting now."""
        with self.lock:
            return self._watches.parked()

    # Writes: each one that changes something is one index.

    def next_index(self) -> int:
        """Take the next index for a write outside the catalog (an ACL write): no table moves."""
        with self.lock:
            self._index += 1
            return self._index

    def register_service(
        self, service: Service, checks: Iterable[Check], drop: Iterable[str]
    ) -> None:
        """Add or replace a service with its checks, and remove the check IDs in ``drop``."""
        with self.lock:
            idx = self._index + 1
            old = self._services.get(service.service_id)
            tables: set[str] = set()
            names = {service.name} | ({old.name} if old else set())
            if old is not None and old.same_definition(service):
                service = old
            else:
                service.create_index = old.create_index if old else idx
                service.modify_index = idx
                self._services[service.service_id] = service
                tables.add("services")
            for check in checks:
                if self._store_check(check, idx):
                    tables.add("checks")
            for check_id in drop:
                if self._checks.pop(check_id, None) is not None:
                    tables.add("checks")
            if tables:
                self._commit(idx, tables, names)

    def deregister_service(self, service_id: str) -> Service | None:
        """Remove a service and all of its checks; return it, or None if it was not there."""
        with self.lock:
            service = self._services.pop(service_id, None)
            if service is None:
                return None
            for check in [c for c in self._checks.values() if c.service_id == service_id]:
                del self._checks[check.check_id]
            self._commit(self._index + 1, {"services", "checks"}, {service.name})
            return service

    def put_check(self, check: Check) -> None:
        """Add or replace one check."""
        with self.lock:
            idx = self._index + 1
            if self._store_check(check, idx):
                self._commit(idx, {"checks"}, self._names_for(check))

    def remove_check(self, check_id: str) -> Check | None:
        """Remove one check; return it, or None if it was not there."""
        with self.lock:
            check = self._checks.pop(check_id, None)
            if check is not None:
                self._commit(self._index + 1, {"checks"}, self._names_for(check))
            return check

    def set_status(self, check_id: str, status: str, output: str) -> None:
        """Record a check result, tracking since when the check has been critical.

        Like the agent's local state (agent/local/state.go ``UpdateCheck``), a result that only
        changes the output does not write to the catalog at once. With a
        ``check_update_interval`` the registry does as Consul does: the agent's copy
        (/v1/agent/checks) shows the new output, and the catalog keeps the old one, with its
        ModifyIndex, until a write half an interval to an interval and a half later. Without
        one (the default) it shows the new output everywhere at once, without a new index.
        """
        with self.lock:
            check = self._checks.get(check_id)
            if check is None:
                return
            if status != CRITICAL:
                check.critical_since = None
            elif check.critical_since is None:
                check.critical_since = time.monotonic()
            if check.status == status:
                if self.check_update_interval > 0:
                    self._defer_output(check, output)
                else:
                    check.output = output
                return
            check.status, check.output, check.agent_output = status, output, None
            idx = self._index + 1
            check.modify_index = idx
            self._commit(idx, {"checks"}, self._names_for(check))

    def _defer_output(self, check: Check, output: str) -> None:
        if output == (check.output if check.agent_output is None else check.agent_output):
            return
        pending = check.agent_output is not None
        check.agent_output = output
        if not pending:
            # Consul's delay: d/2 + lib.RandomStagger(d), so writes of many checks spread out.
            interval = self.check_update_interval
            delay = interval / 2 + random.uniform(0, interval)
            timer = threading.Timer(delay, self._write_deferred_output, args=(check,))
            timer.daemon = True
            timer.start()

    def _write_deferred_output(self, check: Check) -> None:
        """The deferred write: the agent's output reaches the catalog, with a new index."""
        with self.lock:
            # A check replaced, removed, or written since (a status change) has nothing due.
            if self._checks.get(check.check_id) is not check or check.agent_output is None:
                return
            check.output, check.agent_output = check.agent_output, None
            idx = self._index + 1
            check.modify_index = idx
            self._commit(idx, {"checks"}, self._names_for(check))

    def _store_check(self, check: Check, idx: int) -> bool:
        old = self._checks.get(check.check_id)
        if check.status == CRITICAL and check.critical_since is None:
            check.critical_since = old.critical_since if old else time.monotonic()
        if old is not None and old.same_definition(check):
            check.create_index, check.modify_index = old.create_index, old.modify_index
            self._checks[check.check_id] = check
            return False
        check.create_index = old.create_index if old else idx
        check.modify_index = idx
        self._checks[check.check_id] = check
        return True

    def _names_for(self, check: Check) -> set[str]:
        # A node check touches every service on the node (updateAllServiceIndexesOfNode).
        if check.service_id:
            return {check.service_name}
        return {s.name for s in self._services.values()}

    def _commit(self, idx: int, tables: set[str], names: set[str]) -> None:
        self._index = idx
        moved: set[WatchKey] = set()
        for table in tables:
            self._tables[table] = idx
            moved.add(("table", table))
        live = {s.name for s in self._services.values()}
        for name in names:
            moved.add(("service", name))
            if name in live:
                self._service_index[name] = idx
            elif self._service_index.pop(name, None) is not None:
                self._extinction = idx
                moved.add(EXTINCTION)
        self._watches.wake(moved)

    def _bootstrap(self) -> None:
        # What a dev agent's leader writes first: the node with serfHealth, then "consul".
        serf = Check(
            check_id=SERF_CHECK_ID,
            name=SERF_CHECK_NAME,
            status=PASSING,
            output=SERF_CHECK_OUTPUT,
            local=False,
        )
        self.put_check(serf)
        self._tables["nodes"] = self._index
        consul = Service(
            service_id=CONSUL_SERVICE, name=CONSUL_SERVICE, port=SERVER_RPC_PORT, local=False
        )
        consul.meta = {"raft_version": "3", "serf_protocol_current": "2"}
        self.register_service(consul, (), ())
