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

One answer of the services watch may cover several writes. When it skips indexes at which no
check was written, one of them may have been such a write, hidden behind the last one; the
reader then reads everything again soon, at a bounded rate (:attr:`Changes.skipped`). On a
real cluster other writes (KV, sessions, coordinates) also fill such gaps, which is why that
re-read is rate-limited rather than immediate.
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
    # The services index skipped indexes no check write explains: one of them may have been
    # a write the fingerprints cannot see, so read everything again before long.
    skipped: bool = False

    def merge(self, other: Changes) -> None:
        """Add *other* to this one."""
        self.dirty |= other.dirty
        self.everything |= other.everything
        self.skipped |= other.skipped


@dataclass
class Move:
    """A move of the services index, from *previous* to *index*, not yet explained."""

    previous: int
    index: int
    deadline: float
    named: bool  # the listing changed, which explains the write at *index* itself
    probed: bool = False

    def skipped(self, evidence: set[int]) -> bool:
        """True if an index between the two holds no known check write."""
        if self.index - self.previous - 1 > MAX_EVIDENCE:
            return True
        return any(i not in evidence for i in range(self.previous + 1, self.index))


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
        self._moves: list[Move] = []

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
        return min((m.deadline for m in self._moves), default=None)

    def on_listing(self, index: int, listing: Mapping[str, Iterable[str]], now: float) -> Changes:
        """A ``/v1/catalog/services`` answer."""
        new = {name: frozenset(tags or ()) for name, tags in listing.items()}  # tags may be null
        for name in IGNORED_SERVICES:
            new.pop(name, None)
        old, self.listing = self.listing, new
        previous, self.catalog_index = self.catalog_index, index
        if old is None or not self._checks_seen:
            return Changes(everything=self._checks_seen)
        if index < previous:
            self._reset_evidence()
            return Changes(everything=True)
        dirty = {n for n in new if old.get(n) != new[n]}
        if index > previous:
            named = bool(dirty or set(old) - set(new))
            self._moves.append(Move(previous, index, now + self.explain_wait, named))
        self._prune()
        changes = Changes(dirty)
        changes.merge(self._explain())
        return changes

    def on_checks(self, index: int, rows: Iterable[CheckRow]) -> Changes:
        """A ``/v1/health/state/any`` answer."""
        if index < self.checks_index:
            self._reset_evidence()
        new = Fingerprints.of(rows)
        self._evidence |= {i for i in new.modify_indexes if i >= self._floor()}
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
        return any(not m.probed and m.index > self.checks_index for m in self._moves)

    def on_probe(self, checks_index: int | None) -> Changes:
        """The checks table's index read after the services index moved (None: read failed)."""
        for move in self._moves:
            move.probed = True
        below = [m for m in self._moves if checks_index is not None and checks_index < m.index]
        # The checks table never reached these indexes: no check was written at them.
        return self._settle(below, skipped=any(m.index - m.previous > 1 for m in below))

    def expire(self, now: float) -> Changes:
        """Give up waiting for the checks watch on moves past their deadline."""
        late = [m for m in self._moves if m.deadline <= now]
        return self._settle(late, skipped=any(m.index - m.previous > 1 for m in late))

    def _explain(self) -> Changes:
        """Settle the moves the checks view has reached: every check write up to them is known."""
        reached = [m for m in self._moves if self.checks_index >= m.index]
        return self._settle(reached, skipped=any(m.skipped(self._evidence) for m in reached))

    def _settle(self, moves: list[Move], skipped: bool) -> Changes:
        if any(not m.named and m.index not in self._evidence for m in moves):
            # The services table alone moved at that index: nothing tells which service.
            self._moves.clear()
            return Changes(everything=True)
        self._moves = [m for m in self._moves if m not in moves]
        return Changes(skipped=skipped)

    def _floor(self) -> int:
        """Evidence below this index can explain no move still to come."""
        return min((m.previous + 1 for m in self._moves), default=self.catalog_index + 1)

    def _prune(self) -> None:
        floor = self._floor()
        self._evidence = {i for i in self._evidence if i >= floor}

    def _cap_evidence(self) -> None:
        if len(self._evidence) > MAX_EVIDENCE:
            self._evidence = set(sorted(self._evidence)[-MAX_EVIDENCE // 2 :])

    def _reset_evidence(self) -> None:
        self._evidence.clear()
        self._moves.clear()


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
