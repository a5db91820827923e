"""Gateway settings, parsed once from the environment; a bad value names its variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from discovery import env
from discovery.balancer import DEFAULT_STRATEGY, STRATEGIES
from discovery.settings import ConsulSettings
from discovery.stats import EjectionPolicy


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway's proxy core and admin API need to know."""

    balancer: str = DEFAULT_STRATEGY
    connect_timeout: float = 1.0
    try_timeout: float = 15.0
    deadline: float = 30.0
    max_attempts: int = 3
    retry_budget_ratio: float = 0.2
    retry_budget_floor: int = 10
    watch_wait: float = 30.0
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
    snapshot_file: Path | None = None
    ejection: EjectionPolicy = field(default_factory=EjectionPolicy)
    consul: ConsulSettings = field(default_factory=ConsulSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewaySettings:
        """Read the ``GATEWAY_*`` and ``CONSUL_*`` variables."""
        e = os.environ if environ is None else environ
        snapshot = e.get("GATEWAY_SNAPSHOT_FILE", "").strip()
        return cls(
            balancer=env.get_choice(e, "GATEWAY_BALANCER", DEFAULT_STRATEGY, tuple(STRATEGIES)),
            connect_timeout=env.get_duration(e, "GATEWAY_CONNECT_TIMEOUT", "1s", lo=0.01, hi=60),
            try_timeout=env.get_duration(e, "GATEWAY_TRY_TIMEOUT", "15s", lo=0.01, hi=3600),
            deadline=env.get_duration(e, "GATEWAY_DEADLINE", "30s", lo=0.01, hi=3600),
            max_attempts=env.get_int(e, "GATEWAY_MAX_ATTEMPTS", 3, 1, 10),
            retry_budget_ratio=env.get_float(e, "GATEWAY_RETRY_BUDGET", 0.2, 0.0, 1.0),
            retry_budget_floor=env.get_int(e, "GATEWAY_RETRY_FLOOR", 10, 0, 100_000),
            watch_wait=env.get_duration(e, "GATEWAY_WATCH_WAIT", "30s", lo=1, hi=600),
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
            snapshot_file=Path(snapshot) if snapshot else None,
            ejection=EjectionPolicy(
                consecutive_failures=env.get_int(e, "GATEWAY_EJECT_AFTER", 3, 1, 1000),
                base_seconds=env.get_duration(e, "GATEWAY_EJECT_BASE", "5s", lo=0.1, hi=3600),
                max_seconds=env.get_duration(e, "GATEWAY_EJECT_MAX", "2m", lo=0.1, hi=86400),
                max_ejected_fraction=env.get_float(e, "GATEWAY_EJECT_MAX_FRACTION", 0.5, 0.0, 1.0),
            ),
            consul=ConsulSettings.from_env(e),
        )
