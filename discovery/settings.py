"""Settings of a service instance and of its Consul agent, parsed once from the environment."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from discovery import env as e
from discovery.errors import SettingsError

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# Consul's limits on service metadata (agent/structs/structs.go ValidateServiceMetadata): it
# answers a registration past any of them with 400 "Invalid Service Meta".
_META_KEY = re.compile(r"[A-Za-z0-9_-]+")
_META_MAX_PAIRS = 64
_META_MAX_KEY = 128
_META_MAX_VALUE = 512
_META_RESERVED = "consul-"
# What Consul raises lower values to (agent/agent.go addCheck): checks.MinInterval, and the
# non-user setting check_deregister_interval_min (agent/config/default.go).
CONSUL_MIN_INTERVAL = 1.0
CONSUL_MIN_DEREGISTER_AFTER = 60.0


@dataclass(frozen=True)
class ConsulSettings:
    """Where the Consul agent is and how to authenticate to it."""

    scheme: str = "http"
    host: str = "127.0.0.1"
    port: int = 8500
    token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The agent's base URL, e.g. ``http://127.0.0.1:8500``."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsulSettings:
        """Read ``CONSUL_HTTP_ADDR``, and ``CONSUL_HTTP_TOKEN`` or ``CONSUL_HTTP_TOKEN_FILE``.

        ``CONSUL_HTTP_TOKEN_FILE`` is Consul's own variable for a file holding the token (how
        the compose stack hands each component its token); a file that is missing, unreadable
        or empty stops startup, naming the variable.
        """
        env = os.environ if environ is None else environ
        raw = e.get_str(env, "CONSUL_HTTP_ADDR", "http://127.0.0.1:8500")
        parts = urlsplit(raw if "://" in raw else f"http://{raw}")
        problem = f"CONSUL_HTTP_ADDR: expected http(s)://host:port or host:port, got {raw!r}"
        if (
            parts.scheme not in {"http", "https"}
            or not parts.hostname
            or parts.path not in {"", "/"}
        ):
            raise SettingsError(problem)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 8500)
        except ValueError:
            raise SettingsError(problem) from None
        token = e.get_secret(env, "CONSUL_HTTP_TOKEN")
        return cls(scheme=parts.scheme, host=parts.hostname, port=port, token=token)


def instance_id(name: str, port: int) -> str:
    """A unique ID per instance, ``name-host-port``, so replicas never overwrite each other."""
    return f"{name}-{socket.gethostname()}-{port}"


def routable_address() -> str:
    """This host's address as other hosts see it (a container's own IP under Docker)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _check_meta(meta: Mapping[str, str]) -> None:
    """Refuse at start-up what Consul would refuse at registration, naming SERVICE_META."""
    if len(meta) > _META_MAX_PAIRS:
        raise SettingsError(
            f"SERVICE_META: {len(meta)} key=value pairs; Consul takes at most {_META_MAX_PAIRS}"
        )
    for key, value in meta.items():
        if not _META_KEY.fullmatch(key):
            raise SettingsError(
                f"SERVICE_META: key {key!r} may only use letters, digits, '-' and '_'"
            )
        if len(key) > _META_MAX_KEY:
            raise SettingsError(
                f"SERVICE_META: key {key[:20]!r}... is {len(key)} characters long; "
                f"Consul takes at most {_META_MAX_KEY}"
            )
        if key.startswith(_META_RESERVED):
            raise SettingsError(
                f"SERVICE_META: key {key!r} starts with {_META_RESERVED!r}, "
                "a prefix Consul reserves for itself"
            )
        if len(value.encode()) > _META_MAX_VALUE:
            raise SettingsError(
                f"SERVICE_META: the value of {key!r} is {len(value.encode())} bytes long; "
                f"Consul takes at most {_META_MAX_VALUE}"
            )


@dataclass(frozen=True)
class ServiceSettings:
    """How one instance of a service registers itself in Consul."""

    name: str
    port: int
    address: str
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    check_interval: float = 2.0
    check_timeout: float = 1.0
    deregister_after: float = 60.0
    register_timeout: float = 60.0
    drain_delay: float = 1.0
    consul: ConsulSettings = field(default_factory=ConsulSettings)

    @property
    def instance_id(self) -> str:
        """This instance's Consul service ID (see :func:`instance_id`)."""
        return instance_id(self.name, self.port)

    @property
    def health_url(self) -> str:
        """The URL Consul's HTTP check polls."""
        return f"http://{self.address}:{self.port}/health"

    def consul_adjustments(self) -> list[str]:
        """What Consul will raise in this registration, one line per variable behind it."""
        notes = []
        if self.check_interval < CONSUL_MIN_INTERVAL:
            notes.append(
                f"SERVICE_CHECK_INTERVAL={self.check_interval:g}s is below Consul's minimum "
                f"check interval: Consul runs the check every {CONSUL_MIN_INTERVAL:g}s instead"
            )
        if self.deregister_after < CONSUL_MIN_DEREGISTER_AFTER:
            notes.append(
                f"SERVICE_DEREGISTER_AFTER={self.deregister_after:g}s is below Consul's "
                "minimum: Consul deregisters a critical instance after "
                f"{CONSUL_MIN_DEREGISTER_AFTER:g}s at the earliest"
            )
        return notes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """Read the ``SERVICE_*`` variables; a bad value raises SettingsError naming it."""
        env = os.environ if environ is None else environ
        name = e.get_str(env, "SERVICE_NAME")
        if not _NAME.match(name):
            raise SettingsError(
                f"SERVICE_NAME: expected a lowercase DNS label such as 'catalog', got {name!r}"
            )
        meta = e.get_map(env, "SERVICE_META")
        _check_meta(meta)
        interval = e.get_duration(env, "SERVICE_CHECK_INTERVAL", "2s", lo=0.1, hi=3600)
        timeout = e.get_duration(env, "SERVICE_CHECK_TIMEOUT", "1s", lo=0.1, hi=3600)
        if timeout > interval:
            raise SettingsError("SERVICE_CHECK_TIMEOUT: must not exceed SERVICE_CHECK_INTERVAL")
        return cls(
            name=name,
            port=e.get_int(env, "SERVICE_PORT", 8000, 1, 65535),
            address=e.get_str(env, "SERVICE_ADDRESS", "") or routable_address(),
            tags=e.get_list(env, "SERVICE_TAGS"),
            meta=meta,
            check_interval=interval,
            check_timeout=timeout,
            # Consul itself never reaps sooner than one minute after a check turns critical.
            deregister_after=e.get_duration(env, "SERVICE_DEREGISTER_AFTER", "1m", lo=1, hi=86400),
            register_timeout=e.get_duration(env, "SERVICE_REGISTER_TIMEOUT", "60s", lo=0, hi=3600),
            drain_delay=e.get_duration(env, "SERVICE_DRAIN_DELAY", "1s", lo=0, hi=300),
            consul=ConsulSettings.from_env(env),
        )
