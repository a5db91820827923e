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

from discovery.fingerprints import CheckRow, Fingerprints, moved

# Consul registers itself as a service on server agents; it is never an upstream.
IGNORED_SERVICES = frozenset({"consul"})
# How long a move of the services index may wait for the checks watch to explain it.
EXPLAIN_WAIT = 1.0
# Evidence kept at most (indexes of check writes not yet covered by the services index).
MAX_EVIDENCE = 4096


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
        self._seen = Fingerprints()
        self._instance_nodes: dict[str, frozenset[str]] = {}
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
        changes.merge(self._explain())
        return changes

    def on_checks(self, index: int, rows: Iterable[CheckRow]) -> Changes:
        """A ``/v1/health/state/any`` answer."""
        if index < self.checks_index:
            self._reset_evidence()
        new = Fingerprints.of(rows)
        floor = min(self._pending, default=self.catalog_index + 1)
        self._evidence |= {i for i in new.modify_indexes if i >= floor}
        if self._seen.keys - new.keys:
            # Deleting a service deletes its checks in the same write (deleteServiceTxn), so
            # checks that vanished explain a services index equal to this one.
            self._evidence.add(index)
        old, self._seen, self.checks_index = self._seen, new, index
        if not self._checks_seen or self.listing is None:
            self._checks_seen = True
            return Changes(everything=self.listing is not None)
        changed = moved(old.own, new.own)
        if moved_nodes := moved(old.node_checks, new.node_checks):
            changed |= {n for n in self.listing if self.nodes_of(n) & moved_nodes}
        changes = Changes(changed & set(self.listing))
        changes.merge(self._explain())
        self._cap_evidence()
        return changes

    def on_read(self, name: str, nodes: Iterable[str]) -> None:
        """Remember the nodes of *name*'s instances, as a read of the service found them."""
        self._instance_nodes[name] = frozenset(nodes)

    def nodes_of(self, name: str) -> frozenset[str]:
        """Every node *name* is known to run on: from its checks and from its last read."""
        return self._seen.check_nodes.get(name, frozenset()) | self._instance_nodes.get(
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

    def _explain(self) -> Changes:
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


class WorkList:
    """Services to read, urgent ones (a fingerprint moved) before those of a full re-read."""

    def __init__(self) -> None:
        self.urgent: dict[str, None] = {}
        self.bulk: dict[str, None] = {}

    def __bool__(self) -> bool:
        return bool(self.urgent or self.bulk)

    def add(self, names: Iterable[str], urgent: bool) -> None:
        """Queue *names*; an urgent name leaves the bulk queue."""
        for name in sorted(names):
            if urgent:
                self.bulk.pop(name, None)
                self.urgent[name] = None
            elif name not in self.urgent:
                self.bulk[name] = None

    def pop(self) -> tuple[str, bool]:
        """The next name to read, and whether it was urgent."""
        source = self.urgent or self.bulk
        name = next(iter(source))
        del source[name]
        return name, source is self.urgent
