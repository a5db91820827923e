"""Gateway settings, parsed once from the environment; a bad value names its variable."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path

from discovery import env
from discovery.balancer import DEFAULT_STRATEGY, STRATEGIES
from discovery.errors import SettingsError
from discovery.logs import LogSettings
from discovery.settings import ConsulSettings
from discovery.stats import EjectionPolicy
from discovery.tracing import ExportSettings
from gateway.routing import PREFIX


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway's proxy core and admin API need to know."""

    bind: str = "0.0.0.0"
    port: int = 8080
    workers: int = 2
    balancer: str = DEFAULT_STRATEGY
    connect_timeout: float = 1.0
    try_timeout: float = 15.0
    deadline: float = 30.0
    max_attempts: int = 3
    retry_budget_ratio: float = 0.2
    retry_budget_floor: int = 10
    watch_wait: float = 30.0
    watch_min_interval: float = 0.05
    stale_after: float = 60.0
    resync_grace: float = 15.0
    startup_wait: float = 5.0
    panic_threshold: float = 0.5
    # The client side (see gateway/front.py); nginx's client_header_timeout, client_body_timeout,
    # keepalive_timeout, worker_connections, proxy_request_buffering and client_max_body_size.
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    max_connections: int = 10_000
    buffer_body: int = 1024 * 1024
    max_body_size: int = 64 * 1024 * 1024
    access_log: bool = False
    # Who may do what (see README "Threat model").
    admin_bind: str = "127.0.0.1"
    admin_port: int = 9090
    admin_token: str | None = field(default=None, repr=False)
    # Names the admin listener answers to without a token, besides IP addresses, localhost
    # and this host's name (see gateway.policy.admin_host_allowed).
    admin_hosts: frozenset[str] = frozenset()
    admin_detail: bool = False
    debug_headers: bool = False
    expose_admin: frozenset[str] = frozenset()
    trusted_hops: int = 0
    route_claims: Mapping[str, frozenset[str]] = field(default_factory=dict)
    upstream_cidrs: tuple[IPNetwork, ...] = ()
    rate_limit: float = 0.0
    rate_burst: float = 0.0
    max_inflight: int = 0
    snapshot_file: Path | None = None
    ejection: EjectionPolicy = field(default_factory=EjectionPolicy)
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    # LOG_FORMAT, LOG_LEVEL (ACCESS_LOG is access_log above), and opt-in OTel export.
    log: LogSettings = field(default_factory=LogSettings)
    otel: ExportSettings = field(default_factory=ExportSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        """Read the ``GATEWAY_*`` and ``CONSUL_*`` variables."""
        e = os.environ if environ is None else environ
        snapshot = e.get("GATEWAY_SNAPSHOT_FILE", "").strip()
        rate = env.get_float(e, "GATEWAY_RATE_LIMIT", 0.0, 0, 1e6)
        port = env.get_int(e, "GATEWAY_PORT", 8080, 1, 65535)
        admin_port = env.get_int(e, "GATEWAY_ADMIN_PORT", 9090, 1, 65535)
        if admin_port == port:
            raise SettingsError("GATEWAY_ADMIN_PORT: must differ from GATEWAY_PORT")
        return cls(
            bind=env.get_str(e, "GATEWAY_BIND", "0.0.0.0"),
            port=port,
            workers=env.get_int(e, "WEB_CONCURRENCY", 2, 1, 64),
            balancer=env.get_choice(e, "GATEWAY_BALANCER", DEFAULT_STRATEGY, tuple(STRATEGIES)),
            connect_timeout=env.get_duration(e, "GATEWAY_CONNECT_TIMEOUT", "1s", lo=0.01, hi=60),
            try_timeout=env.get_duration(e, "GATEWAY_TRY_TIMEOUT", "15s", lo=0.01, hi=3600),
            deadline=env.get_duration(e, "GATEWAY_DEADLINE", "30s", lo=0.01, hi=3600),
            max_attempts=env.get_int(e, "GATEWAY_MAX_ATTEMPTS", 3, 1, 10),
            retry_budget_ratio=env.get_float(e, "GATEWAY_RETRY_BUDGET", 0.2, 0.0, 1.0),
            retry_budget_floor=env.get_int(e, "GATEWAY_RETRY_FLOOR", 10, 0, 100_000),
            watch_wait=env.get_duration(e, "GATEWAY_WATCH_WAIT", "30s", lo=1, hi=600),
            # Below a second: the pause delays the second change of a burst by up to this.
            watch_min_interval=env.get_duration(
                e, "GATEWAY_WATCH_MIN_INTERVAL", "50ms", lo=0, hi=1
            ),
            stale_after=env.get_duration(e, "GATEWAY_STALE_AFTER", "60s", lo=1, hi=86400),
            resync_grace=env.get_duration(e, "GATEWAY_RESYNC_GRACE", "15s", lo=0, hi=3600),
            # Below gunicorn's 30 s worker timeout, which also covers a worker's start.
            startup_wait=env.get_duration(e, "GATEWAY_STARTUP_WAIT", "5s", lo=0, hi=20),
            panic_threshold=env.get_float(e, "GATEWAY_PANIC_THRESHOLD", 0.5, 0.0, 1.0),
            header_timeout=env.get_duration(e, "GATEWAY_HEADER_TIMEOUT", "10s", lo=0.1, hi=3600),
            body_timeout=env.get_duration(e, "GATEWAY_BODY_TIMEOUT", "10s", lo=0.1, hi=3600),
            keepalive_timeout=env.get_duration(
                e, "GATEWAY_KEEPALIVE_TIMEOUT", "75s", lo=0.1, hi=86400
            ),
            max_connections=env.get_int(e, "GATEWAY_MAX_CONNECTIONS", 10_000, 1, 1_000_000),
            buffer_body=env.get_int(e, "GATEWAY_BUFFER_BODY", 1024 * 1024, 0, 1 << 30),
            max_body_size=env.get_int(e, "GATEWAY_MAX_BODY_SIZE", 64 * 1024 * 1024, 0, 1 << 40),
            access_log=env.get_bool(e, "ACCESS_LOG", False),
            admin_bind=env.get_str(e, "GATEWAY_ADMIN_BIND", "127.0.0.1"),
            admin_port=admin_port,
            admin_token=env.get_secret(e, "GATEWAY_ADMIN_TOKEN"),
            admin_hosts=_host_names(e),
            admin_detail=env.get_bool(e, "GATEWAY_ADMIN_DETAIL", False),
            debug_headers=env.get_bool(e, "GATEWAY_DEBUG_HEADERS", False),
            expose_admin=frozenset(env.get_list(e, "GATEWAY_EXPOSE_ADMIN")),
            trusted_hops=env.get_int(e, "GATEWAY_TRUSTED_HOPS", 0, 0, 10),
            route_claims=_claims(e),
            upstream_cidrs=_cidrs(e),
            rate_limit=rate,
            rate_burst=env.get_float(e, "GATEWAY_RATE_BURST", min(2 * rate, 1e6), 0, 1e6),
            max_inflight=env.get_int(e, "GATEWAY_MAX_INFLIGHT", 0, 0, 1_000_000),
            snapshot_file=Path(snapshot) if snapshot else None,
            ejection=EjectionPolicy(
                consecutive_failures=env.get_int(e, "GATEWAY_EJECT_AFTER", 3, 1, 1000),
                base_seconds=env.get_duration(e, "GATEWAY_EJECT_BASE", "5s", lo=0.1, hi=3600),
                max_seconds=env.get_duration(e, "GATEWAY_EJECT_MAX", "2m", lo=0.1, hi=86400),
                max_ejected_fraction=env.get_float(e, "GATEWAY_EJECT_MAX_FRACTION", 0.5, 0.0, 1.0),
            ),
            consul=ConsulSettings.from_env(e),
            log=LogSettings.from_env("gateway", f"{socket.gethostname()}:{port}", e),
            otel=ExportSettings.from_env("gateway", e),
        )


IPNetwork = IPv4Network | IPv6Network


def _claims(e: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """``GATEWAY_ROUTE_CLAIMS``: ``service=/prefix`` pairs, a service may appear more than once."""
    claims: dict[str, set[str]] = {}
    for item in env.get_list(e, "GATEWAY_ROUTE_CLAIMS"):
        service, sep, prefix = item.partition("=")
        if not sep or not service.strip() or not PREFIX.match(prefix.strip()):
            raise SettingsError(
                f"GATEWAY_ROUTE_CLAIMS: expected service=/prefix pairs, got {item!r}"
            )
        claims.setdefault(service.strip(), set()).add(prefix.strip())
    return {k: frozenset(v) for k, v in claims.items()}


_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\Z")


def _host_names(e: Mapping[str, str]) -> frozenset[str]:
    """``GATEWAY_ADMIN_HOSTS``: DNS names, lowercased, without a port or a final dot."""
    names = set()
    for item in env.get_list(e, "GATEWAY_ADMIN_HOSTS"):
        name = item.lower().removesuffix(".")
        if not _HOST_NAME.match(name):
            raise SettingsError(
                f"GATEWAY_ADMIN_HOSTS: expected host names such as gateway.internal, got {item!r}"
            )
        names.add(name)
    return frozenset(names)


def _cidrs(e: Mapping[str, str]) -> tuple[IPNetwork, ...]:
    """``GATEWAY_UPSTREAM_CIDRS``: the address ranges instances may be in (empty: any)."""
    networks = []
    for item in env.get_list(e, "GATEWAY_UPSTREAM_CIDRS"):
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(
                f"GATEWAY_UPSTREAM_CIDRS: expected CIDRs such as 10.0.0.0/8, got {item!r}"
            ) from None
    return tuple(networks)
