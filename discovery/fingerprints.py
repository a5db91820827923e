"""What decides whether a service must be read again: its checks, as Consul lists them all.

``/v1/health/state/any`` gives every check with its node, instance, status and ModifyIndex.
Consul writes a check's ModifyIndex whenever the check changes (``ensureCheckTxn`` in
agent/consul/state/catalog.go), so a service whose set of (instance, check, status,
ModifyIndex) is unchanged needs no read; a node-level check belongs to every service on
its node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


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


@dataclass(frozen=True)
class Fingerprints:
    """One ``/v1/health/state/any`` answer, reduced to what decides a re-read."""

    # Per service name: (instance, check, status, ModifyIndex) of each of its checks.
    own: Mapping[str, frozenset[tuple[str, str, str, int]]] = field(default_factory=dict)
    # Per node: (check, status, ModifyIndex) of each of its node-level checks.
    node_checks: Mapping[str, frozenset[tuple[str, str, int]]] = field(default_factory=dict)
    check_nodes: Mapping[str, frozenset[str]] = field(default_factory=dict)  # service -> nodes
    keys: frozenset[tuple[str, str]] = frozenset()  # (node, check) of every check
    modify_indexes: frozenset[int] = frozenset()

    @classmethod
    def of(cls, rows: Iterable[CheckRow]) -> Fingerprints:
        """Group *rows* by service and by node."""
        own: dict[str, set[tuple[str, str, str, int]]] = {}
        nodes: dict[str, set[tuple[str, str, int]]] = {}
        check_nodes: dict[str, set[str]] = {}
        keys, indexes = set(), set()
        for row in rows:
            keys.add((row.node, row.check_id))
            indexes.add(row.modify_index)
            if row.service_id:
                key = (row.service_id, row.check_id, row.status, row.modify_index)
                own.setdefault(row.service_name, set()).add(key)
                check_nodes.setdefault(row.service_name, set()).add(row.node)
            else:
                nodes.setdefault(row.node, set()).add((row.check_id, row.status, row.modify_index))
        return cls(
            own={name: frozenset(v) for name, v in own.items()},
            node_checks={node: frozenset(v) for node, v in nodes.items()},
            check_nodes={name: frozenset(v) for name, v in check_nodes.items()},
            keys=frozenset(keys),
            modify_indexes=frozenset(indexes),
        )


def moved(old: Mapping[str, object], new: Mapping[str, object]) -> set[str]:
    """The keys whose value differs between *old* and *new*, present in either."""
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
