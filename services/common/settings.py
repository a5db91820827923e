"""Settings of one sample-service instance, parsed once from the environment.

The gunicorn config (bind, workers, threads, access log, which app to serve) and the Flask app
(identity, forwarded headers, fault knobs) read this one object; the Consul registration part
is :class:`discovery.settings.ServiceSettings`, nested here whole, so ``SERVICE_PORT`` and
``SERVICE_NAME`` are parsed in one place only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from discovery import env as e
from discovery.errors import SettingsError
from discovery.logs import LogSettings
from discovery.settings import ServiceSettings as Registration
from discovery.tracing import ExportSettings
from services.common.faults import Faults

__all__ = ["SERVICES_DIR", "ServiceSettings", "known_apps"]

SERVICES_DIR = Path(__file__).resolve().parents[1]


def known_apps(root: Path = SERVICES_DIR) -> list[str]:
    """The services under *root*: folders with an ``app.py``, ``common`` excluded."""
    return sorted(p.parent.name for p in root.glob("*/app.py") if p.parent.name != "common")


@dataclass(frozen=True)
class ServiceSettings:
    """Everything one instance of a sample service takes from its environment."""

    registration: Registration
    app: str  # the folder under services/ whose create_app() is served
    bind: str = "0.0.0.0"
    workers: int = 1
    threads: int = 8
    access_log: bool = False
    trusted_hops: int = 1  # proxies in front (the gateway is one) whose X-Forwarded-* count
    faults: Faults = field(default_factory=Faults)  # the knobs' values at startup
    # LOG_FORMAT, LOG_LEVEL (and ACCESS_LOG again), and opt-in OTel export (OTEL_*).
    log: LogSettings = field(default_factory=LogSettings)
    otel: ExportSettings = field(default_factory=ExportSettings)

    @property
    def name(self) -> str:
        """The Consul service name (``SERVICE_NAME``)."""
        return self.registration.name

    @property
    def port(self) -> int:
        """The port to listen on and to register (``SERVICE_PORT``)."""
        return self.registration.port

    @property
    def instance_id(self) -> str:
        """The ID this instance registers under in Consul."""
        return self.registration.instance_id

    @property
    def wsgi_app(self) -> str:
        """What gunicorn serves, e.g. ``services.catalog.app:create_app()``."""
        return f"services.{self.app}.app:create_app()"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        default_name: str | None = None,
        apps: list[str] | None = None,
    ) -> ServiceSettings:
        """Read the ``SERVICE_*``, ``WEB_*``, ``ACCESS_LOG``, ``FAULT_*``, ``LOG_*`` and
        ``OTEL_*`` variables.

        *default_name* stands in for a missing ``SERVICE_NAME`` (an app built in a test).
        With *apps* (the known services), ``SERVICE_APP`` must name one of them.
        """
        env = dict(os.environ if environ is None else environ)
        if default_name and not env.get("SERVICE_NAME", "").strip():
            env["SERVICE_NAME"] = default_name
        registration = Registration.from_env(env)
        app = e.get_str(env, "SERVICE_APP", registration.name)
        # Name the variable that chose the app: SERVICE_APP if set, else SERVICE_NAME.
        source = "SERVICE_APP" if env.get("SERVICE_APP", "").strip() else "SERVICE_NAME"
        if apps is not None and app not in apps:
            raise SettingsError(
                f"{source}: no service {app!r} under services/ (known: {', '.join(apps)});"
                " set SERVICE_APP to serve one of them under another name"
            )
        return cls(
            registration=registration,
            app=app,
            bind=e.get_str(env, "SERVICE_BIND", "0.0.0.0"),
            workers=e.get_int(env, "WEB_CONCURRENCY", 1, 1, 64),
            threads=e.get_int(env, "WEB_THREADS", 8, 1, 256),
            access_log=e.get_bool(env, "ACCESS_LOG", False),
            trusted_hops=e.get_int(env, "SERVICE_TRUSTED_HOPS", 1, 0, 10),
            faults=Faults.from_env(env),
            log=LogSettings.from_env(registration.name, registration.instance_id, env),
            otel=ExportSettings.from_env(registration.name, env),
        )
