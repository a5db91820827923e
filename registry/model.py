"""The records the registry keeps: the node, services and health checks, plus Consul's constants.

Field names follow Consul's ``structs.NodeService`` and ``structs.HealthCheck``; ``render``
turns them into the JSON shapes of each endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PASSING = "passing"
WARNING = "warning"
CRITICAL = "critical"
STATUSES = (PASSING, WARNING, CRITICAL)

#: The node check every catalog node carries (agent/structs/catalog.go).
SERF_CHECK_ID = "serfHealth"
SERF_CHECK_NAME = "Serf Health Status"
SERF_CHECK_OUTPUT = "Agent alive and reachable"

#: Maintenance mode is a critical check with this ID prefix (structs.ServiceMaintPrefix).
SERVICE_MAINT_PREFIX = "_service_maintenance:"
SERVICE_MAINT_NAME = "Service Maintenance Mode"
DEFAULT_MAINT_REASON = (
    "Maintenance mode is enabled for this service, but no reason was provided. "
    "This is a default message."
)

#: Node maintenance is a critical node check with this ID (structs.NodeMaint).
NODE_MAINT_ID = "_node_maintenance"
NODE_MAINT_NAME = "Node Maintenance Mode"
DEFAULT_NODE_MAINT_REASON = (
    "Maintenance mode is enabled for this node, but no reason was provided. "
    "This is a default message."
)

#: Every Consul server registers itself as the "consul" service on its server RPC port.
CONSUL_SERVICE = "consul"
SERVER_RPC_PORT = 8300


@dataclass(frozen=True)
class Node:
    """The single node of this dev-mode agent."""

    name: str
    node_id: str
    address: str
    datacenter: str


@dataclass(frozen=True)
class CheckSpec:
    """How a check runs: Consul's ``structs.CheckType`` reduced to HTTP, TCP and TTL checks."""

    http: str = ""
    method: str = ""
    header: tuple[tuple[str, tuple[str, ...]], ...] = ()
    body: str = ""
    disable_redirects: bool = False
    tls_skip_verify: bool = False
    tcp: str = ""
    interval_ns: int = 0
    timeout_ns: int = 0
    ttl_ns: int = 0
    deregister_after_ns: int = 0

    @property
    def kind(self) -> str:
        """Consul's ``CheckType.Type()``: "http", "tcp", "ttl", or "" for a bare check."""
        if self.http and self.interval_ns > 0:
            return "http"
        if self.ttl_ns > 0:
            return "ttl"
        if self.tcp and self.interval_ns > 0:
            return "tcp"
        return ""


@dataclass
class Service:
    """A service instance registered on the node."""

    service_id: str
    name: str
    tags: list[str] = field(default_factory=list)
    address: str = ""
    port: int = 0
    meta: dict[str, str] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=lambda: {"Passing": 1, "Warning": 1})
    enable_tag_override: bool = False
    tagged_addresses: dict[str, dict[str, object]] = field(default_factory=dict)
    #: False for records the servers own (the "consul" service), which the agent API hides.
    local: bool = True
    create_index: int = 0
    modify_index: int = 0

    def same_definition(self, other: Service) -> bool:
        """True when a re-registration changes nothing (Consul then skips the index bump)."""
        return (
            self.name,
            self.tags,
            self.address,
            self.port,
            self.meta,
            self.weights,
            self.enable_tag_override,
            self.tagged_addresses,
        ) == (
            other.name,
            other.tags,
            other.address,
            other.port,
            other.meta,
            other.weights,
            other.enable_tag_override,
            other.tagged_addresses,
        )


@dataclass
class Check:
    """A health check; ``spec`` is None for checks nothing runs (maintenance, serfHealth)."""

    check_id: str
    name: str
    status: str = CRITICAL
    notes: str = ""
    output: str = ""
    service_id: str = ""
    service_name: str = ""
    service_tags: list[str] = field(default_factory=list)
    check_type: str = ""
    interval: str = ""
    timeout: str = ""
    spec: CheckSpec | None = None
    #: Effective DeregisterCriticalServiceAfter in seconds, after the minimum is applied.
    reap_after: float | None = None
    #: time.monotonic() when the check last turned critical; None while it is not critical.
    critical_since: float | None = None
    #: False for records the servers own (serfHealth), which the agent API hides.
    local: bool = True
    create_index: int = 0
    modify_index: int = 0
    #: A newer output the agent holds back from the catalog (``check_update_interval``).
    agent_output: str | None = None

    def same_definition(self, other: Check) -> bool:
        """True when a re-registration changes nothing visible in the catalog."""
        return (
            self.name,
            self.status,
            self.notes,
            self.output,
            self.service_id,
            self.service_name,
            self.service_tags,
            self.check_type,
            self.interval,
            self.timeout,
        ) == (
            other.name,
            other.status,
            other.notes,
            other.output,
            other.service_id,
            other.service_name,
            other.service_tags,
            other.check_type,
            other.interval,
            other.timeout,
        )
