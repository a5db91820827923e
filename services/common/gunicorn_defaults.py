"""gunicorn settings shared by the sample services; ``services/gunicorn.conf.py`` imports them.

Bind, workers, threads and the access log come from :class:`services.common.settings.
ServiceSettings` (``SERVICE_BIND``, ``SERVICE_PORT``, ``WEB_CONCURRENCY``, ``WEB_THREADS``,
``ACCESS_LOG``), parsed here in the master (each worker's ``create_app`` reads the same
variables once more); a bad value stops startup naming the variable.
"""

from __future__ import annotations

import sys
from typing import Any

from discovery import lifecycle, logs, metrics_dir
from discovery.errors import SettingsError
from discovery.lifecycle import on_starting
from services.common.settings import ServiceSettings, known_apps

try:
    settings = ServiceSettings.from_env(apps=known_apps())
except SettingsError as exc:
    sys.exit(f"configuration error: {exc}")
# LOG_FORMAT and LOG_LEVEL: JSON lines (or text) for the master, the workers and gunicorn.
logs.configure(settings.log)
logconfig_dict = logs.dict_config(settings.log)
# The workers' Prometheus files (/metrics adds them up): a fresh folder, removed on exit.
METRICS_DIR = metrics_dir.master_folder(f"{settings.name}-metrics-")


def when_ready(server: Any) -> None:
    """Register in Consul (see discovery/lifecycle.py), then make the metrics folder.

    Last, once the socket is bound and the registration done: a master that stops before
    (it cannot bind, or gives up registering) exits without on_exit, and leaves nothing.
    """
    lifecycle.when_ready(server)
    METRICS_DIR.create()


def on_exit(server: Any) -> None:
    """Deregister (see discovery/lifecycle.py), then remove the metrics folder."""
    lifecycle.on_exit(server)
    METRICS_DIR.remove()


def child_exit(server: Any, worker: Any) -> None:
    """Drop the in-flight gauge of a worker that exited."""
    METRICS_DIR.worker_exited(worker.pid)


bind = [f"{settings.bind}:{settings.port}"]
workers = settings.workers
threads = settings.threads
worker_class = "gthread"
# gunicorn's control socket has one default path per user; replicas on one host would clash.
control_socket_disable = True
# Longer than any request the samples serve; compose's stop_grace_period must exceed
# SERVICE_DRAIN_DELAY + graceful_timeout so deregistration always runs.
graceful_timeout = 10
keepalive = 75  # longer than the gateway's idle pool timeout, so the gateway closes first
# ACCESS_LOG makes each worker write its own access line, with request and trace IDs
# (services/common/observability.py); gunicorn's own is off.
accesslog = None
# The app's ProxyFix (SERVICE_TRUSTED_HOPS) is the one reader of X-Forwarded-*. gunicorn's own
# reading trusts 127.0.0.1 by default: a stack on loopback would act unlike one in containers.
forwarded_allow_ips = ""
errorlog = "-"

__all__ = [
    "accesslog",
    "bind",
    "child_exit",
    "control_socket_disable",
    "errorlog",
    "forwarded_allow_ips",
    "graceful_timeout",
    "keepalive",
    "logconfig_dict",
    "on_exit",
    "on_starting",
    "settings",
    "threads",
    "when_ready",
    "worker_class",
    "workers",
]
