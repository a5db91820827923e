"""Which services to read again, from two catalog-wide views of Consul (no I/O here).

The watcher follows the whole catalog with two blocking queries per process, whatever the
number of services (fabio watches ``/v1/health/state/any`` for the same reason):

- ``/v1/catalog/services``: names and tags; its index is the services table's;
- ``/v1/health/state/any``: every check with its node, service, status and ModifyIndex; its
  index is the checks table's (``checksInStateTxn`` in agent/consul/state/catalog.go).

:class:`CatalogDiff` keeps a fingerprint of each service (its checks, and the checks of the
nodes it runs on) and names the services whose fingerprint moved. The watcher then reads only
those, without blocking. A write to the services table alone (an instance without checks, or a
new port or meta with unchanged checks) changes no fingerprint. It is recognised because no
check write carries its index: when the checks table is below that index (asked without
blocking, see :attr:`CatalogDiff.probe_wanted`), or has passed it without a trace of it,
every service is read again. The checks index alone is no evidence: deleting a service moves
it even when no check goes with it. ``explain_wait`` bounds the wait if the probe fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Consul registers itself as a service on server agents; it is never an upstream.
IGNORED_SERVICES = frozenset({"consul"})
# How long a move of the services index may wait for the checks watch to explain it.
EXPLAIN_WAIT = 1.0
# Evidence kept at most (indexes of check writes not yet covered by the services index).
MAX_EVIDENCE = 4096


@dataclass(frozen=True, slots=True)
class CheckRow:
    """The fields of one ``/v1/health/state/any`` element that decide a re-read."""

    node: str
    check_id: str
    service_id: str
    service_name: str
    status: str
    modify_index: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckRow:
        """Build from one element of ``GET /v1/health/state/any``."""
        return cls(
            node=str(data.get("Node") or ""),
            check_id=str(data.get("CheckID") or ""),
            service_id=str(data.get("ServiceID") or ""),
            service_name=str(data.get("ServiceName") or ""),
            status=str(data.get("Status") or ""),
            modify_index=int(data.get("ModifyIndex") or 0),
        )


@dataclass
class Changes:
    """What the watcher should do after an update: read some services, or all of them."""

    dirty: set[str] = field(default_factory=set)
    everything: bool = False

    def merge(self, other: Changes) -> None:
        """Add *other* to this one."""
        self.dirty |= other.dirty
        self.everything |= other.everything


class CatalogDiff:
    """Fingerprints of every service and the services index moves still to explain."""

    def __init__(self, explain_wait: float = EXPLAIN_WAIT) -> None:
        self.explain_wait = explain_wait
        self.listing: dict[str, frozenset[str]] | None = None
        self.catalog_index = 0
        self.checks_index = 0
        self._checks_seen = False
        self._own: dict[str, frozenset[tuple[str, str, str, int]]] = {}
        self._check_nodes: dict[str, frozenset[str]] = {}
        self._node_checks: dict[str, frozenset[tuple[str, str, int]]] = {}
        self._instance_nodes: dict[str, frozenset[str]] = {}
        self._check_keys: frozenset[tuple[str, str]] = frozenset()
        self._evidence: set[int] = set()
        self._pending: dict[int, float] = {}  # services index -> when to stop waiting
        self._probed: set[int] = set()

    @property
    def names(self) -> set[str]:
        """The services Consul lists now (empty before the first listing)."""
        return set(self.listing or ())

    @property
    def ready(self) -> bool:
        """True once both views have answered, so every service can be read."""
        return self.listing is not None and self._checks_seen

    @property
    def deadline(self) -> float | None:
        """When :meth:`expire` has something to do, if ever."""
        return min(self._pending.values()) if self._pending else None

    def on_listing(self, index: int, listing: Mapping[str, Iterable[str]], now: float) -> Changes:
        """A ``/v1/catalog/services`` answer."""
        new = {name: frozenset(tags or ()) for name, tags in listing.items()}  # tags may be null
        for name in IGNORED_SERVICES:
            new.pop(name, None)
        old, self.listing = self.listing, new
        moved_back = index < self.catalog_index
        moved = index != self.catalog_index
        self.catalog_index = index
        if old is None or not self._checks_seen:
            return Changes(everything=self._checks_seen)
        if moved_back:
            self._reset_evidence()
            return Changes(everything=True)
        dirty = {n for n in new if old.get(n) != new[n]}
        if moved and not dirty and not (set(old) - set(new)):
            self._pending[index] = now + self.explain_wait
        self._prune(index)
        changes = Changes(dirty)
        changes.merge(self._explain(now))
        return changes

    def on_checks(self, index: int, rows: Iterable[CheckRow], now: float) -> Changes:
        """A ``/v1/health/state/any`` answer."""
        own: dict[str, set[tuple[str, str, str, int]]] = {}
        check_nodes: dict[str, set[str]] = {}
        node_checks: dict[str, set[tuple[str, str, int]]] = {}
        keys: set[tuple[str, str]] = set()
        if index < self.checks_index:
            self._reset_evidence()
        for row in rows:
            self._evidence.add(row.modify_index)
            keys.add((row.node, row.check_id))
            if row.service_id:
                key = (row.service_id, row.check_id, row.status, row.modify_index)
                own.setdefault(row.service_name, set()).add(key)
                check_nodes.setdefault(row.service_name, set()).add(row.node)
            else:
                node_checks.setdefault(row.node, set()).add(
                    (row.check_id, row.status, row.modify_index)
                )
        new_own = {name: frozenset(keys) for name, keys in own.items()}
        new_nodes = {node: frozenset(keys) for node, keys in node_checks.items()}
        changed = {
            n for n in new_own.keys() | self._own.keys() if new_own.get(n) != self._own.get(n)
        }
        moved_nodes = {
            n
            for n in new_nodes.keys() | self._node_checks.keys()
            if new_nodes.get(n) != self._node_checks.get(n)
        }
        if self._check_keys - keys:
            # Deleting a service deletes its checks in the same write (deleteServiceTxn), so
            # checks that vanished explain a services index equal to this one.
            self._evidence.add(index)
        self._check_keys = frozenset(keys)
        first = not self._checks_seen
        self._own, self._node_checks, self._checks_seen = new_own, new_nodes, True
        self._check_nodes = {name: frozenset(nodes) for name, nodes in check_nodes.items()}
        self.checks_index = index
        if first:
            return Changes(everything=self.listing is not None)
        if self.listing is None:
            return Changes()
        if moved_nodes:
            changed |= {n for n in self.listing if self.nodes_of(n) & moved_nodes}
        changes = Changes(changed & set(self.listing))
        changes.merge(self._explain(now))
        self._cap_evidence()
        return changes

    def on_read(self, name: str, nodes: Iterable[str]) -> None:
        """Remember the nodes of *name*'s instances, as a read of the service found them."""
        self._instance_nodes[name] = frozenset(nodes)

    def nodes_of(self, name: str) -> frozenset[str]:
        """Every node *name* is known to run on: from its checks and from its last read."""
        return self._check_nodes.get(name, frozenset()) | self._instance_nodes.get(
            name, frozenset()
        )

    def forget(self, names: Iterable[str]) -> None:
        """Drop what is remembered of services that are gone."""
        for name in names:
            self._instance_nodes.pop(name, None)

    @property
    def probe_wanted(self) -> bool:
        """True when a services index move waits for a checks index not yet seen.

        The watcher then reads the checks table's index without blocking (any
        ``/v1/health/state/<state>`` answer carries it) and calls :meth:`on_probe`.
        """
        return any(i > self.checks_index for i in self._pending if i not in self._probed)

    def on_probe(self, checks_index: int | None) -> Changes:
        """The checks table's index read after the services index moved (None: read failed)."""
        self._probed |= set(self._pending)
        if checks_index is not None and any(i > checks_index for i in self._pending):
            # No check was written at that index: the services table alone moved.
            self._pending.clear()
            return Changes(everything=True)
        return Changes()  # the checks watch is about to answer; _explain decides then

    def expire(self, now: float) -> Changes:
        """Read everything if a services index move waited past its deadline unexplained."""
        if any(deadline <= now for deadline in self._pending.values()):
            self._pending.clear()
            return Changes(everything=True)
        return Changes()

    def _explain(self, now: float) -> Changes:
        for index in list(self._pending):
            if index in self._evidence:
                del self._pending[index]
            elif self.checks_index >= index:
                # The checks table passed this index and no check was written at it.
                self._pending.clear()
                return Changes(everything=True)
        return Changes()

    def _prune(self, catalog_index: int) -> None:
        """Evidence at or below the services index can explain no later move."""
        pending_floor = min(self._pending, default=catalog_index + 1)
        floor = min(catalog_index + 1, pending_floor)
        self._evidence = {i for i in self._evidence if i >= floor}
        self._probed = {i for i in self._probed if i in self._pending}

    def _cap_evidence(self) -> None:
        if len(self._evidence) > MAX_EVIDENCE:
            self._evidence = set(sorted(self._evidence)[-MAX_EVIDENCE // 2 :])

    def _reset_evidence(self) -> None:
        self._evidence.clear()
        self._pending.clear()
        self._probed.clear()
