"""The discovery data model: instances of services as Consul's health endpoint reports them.

Values are kept exactly as Consul gives them (an ID must match Consul's to mean the same
instance), though whoever registers may have chosen them to harm: each output escapes them
instead. A header gets them percent-encoded (:func:`gateway.headers.field_value`), a text log
line escaped (:func:`discovery.logs.escape`), JSON its own escapes, the routing page text nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PASSING, WARNING, CRITICAL, MAINTENANCE = "passing", "warning", "critical", "maintenance"
_SEVERITY = {PASSING: 0, WARNING: 1, CRITICAL: 2, MAINTENANCE: 3}
# Consul adds these checks when an operator puts a service or node into maintenance mode.
_MAINTENANCE_CHECKS = ("_service_maintenance:", "_node_maintenance")


@dataclass(frozen=True, slots=True)
class Check:
    """One health check attached to an instance or to its node."""

    check_id: str
    name: str
    status: str
    output: str = ""
    # What tells a check that never ran from one that failed (discovery.first_run).
    interval: str = ""
    timeout: str = ""
    create_index: int = 0
    modify_index: int = 0


@dataclass(frozen=True, slots=True)
class Instance:
    """One registered instance of a service with its aggregated health."""

    id: str
    service: str
    address: str
    port: int
    status: str
    node: str = ""
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()

    @property
    def passing(self) -> bool:
        """True when every check of the instance and its node passes, like Consul's ``?passing``."""
        return self.status == PASSING

    @classmethod
    def from_health_entry(cls, entry: Mapping[str, Any]) -> Instance:
        """Build from one element of ``GET /v1/health/service/:name``."""
        node, svc = entry["Node"], entry["Service"]
        checks = tuple(
            Check(
                c["CheckID"],
                c.get("Name", ""),
                c["Status"],
                c.get("Output", ""),
                interval=str(c.get("Interval") or ""),
                timeout=str(c.get("Timeout") or ""),
                create_index=int(c.get("CreateIndex") or 0),
                modify_index=int(c.get("ModifyIndex") or 0),
            )
            for c in entry.get("Checks") or ()
        )
        return cls(
            id=svc["ID"],
            service=svc["Service"],
            # An empty service address means "the node's address" in Consul's data model.
            address=svc.get("Address") or node.get("Address", ""),
            port=int(svc["Port"]),
            status=aggregate_status(checks),
            node=node.get("Node", ""),
            tags=tuple(svc.get("Tags") or ()),
            meta=dict(svc.get("Meta") or {}),
            checks=checks,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, used by the admin API and the snapshot file."""
        return {
            "id": self.id,
            "service": self.service,
            "address": self.address,
            "port": self.port,
            "status": self.status,
            "node": self.node,
            "tags": list(self.tags),
            "meta": dict(self.meta),
            "checks": [
                {"id": c.check_id, "name": c.name, "status": c.status, "output": c.output}
                for c in self.checks
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Instance:
        """Inverse of :meth:`to_dict`."""
        return cls(
            id=data["id"],
            service=data["service"],
            address=data["address"],
            port=int(data["port"]),
            status=data["status"],
            node=data.get("node", ""),
            tags=tuple(data.get("tags", ())),
            meta=dict(data.get("meta", {})),
            checks=tuple(
                Check(c["id"], c.get("name", ""), c["status"], c.get("output", ""))
                for c in data.get("checks", ())
            ),
        )


def aggregate_status(checks: tuple[Check, ...]) -> str:
    """The worst status among *checks*; maintenance outranks every other state."""
    if any(c.check_id.startswith(_MAINTENANCE_CHECKS) for c in checks):
        return MAINTENANCE
    worst = PASSING
    for check in checks:
        if _SEVERITY.get(check.status, 2) > _SEVERITY[worst]:
            worst = check.status if check.status in _SEVERITY else CRITICAL
    return worst


@dataclass(frozen=True, slots=True)
class Service:
    """Every known instance of one service, and the passing subset the balancers use."""

    name: str
    instances: tuple[Instance, ...]
    passing: tuple[Instance, ...]

    @classmethod
    def of(cls, name: str, instances: list[Instance]) -> Service:
        """Build with instances in a stable order, so every gateway worker agrees on it."""
        ordered = tuple(sorted(instances, key=lambda i: i.id))
        return cls(name, ordered, tuple(i for i in ordered if i.passing))

    @property
    def tags(self) -> tuple[str, ...]:
        """Tags of the service, as the first instance declares them."""
        return self.instances[0].tags if self.instances else ()

    @property
    def meta(self) -> Mapping[str, str]:
        """Meta of the service, as the first instance declares it."""
        return self.instances[0].meta if self.instances else {}
