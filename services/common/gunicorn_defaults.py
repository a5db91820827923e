"""gunicorn settings shared by the sample services; each service's gunicorn.conf.py imports them.

Environment: ``SERVICE_PORT`` (default 8000), ``SERVICE_BIND`` (default 0.0.0.0),
``WEB_CONCURRENCY`` (workers, default 1: fault knobs are per process) and ``WEB_THREADS``
(threads per worker, default 8).
"""

from __future__ import annotations

import os
import sys

from discovery import env
from discovery.errors import SettingsError
from discovery.lifecycle import configure_logging, on_exit, on_starting, when_ready

configure_logging()
try:
    port = env.get_int(os.environ, "SERVICE_PORT", 8000, 1, 65535)
    workers = env.get_int(os.environ, "WEB_CONCURRENCY", 1, 1, 64)
    threads = env.get_int(os.environ, "WEB_THREADS", 8, 1, 256)
except SettingsError as exc:
    sys.exit(f"configuration error: {exc}")

bind = [f"{os.environ.get('SERVICE_BIND', '0.0.0.0')}:{port}"]
worker_class = "gthread"
# gunicorn's control socket has one default path per user; replicas on one host would clash.
control_socket_disable = True
# Longer than any request the samples serve; compose's stop_grace_period must exceed
# SERVICE_DRAIN_DELAY + graceful_timeout so deregistration always runs.
graceful_timeout = 10
keepalive = 75  # longer than the gateway's idle pool timeout, so the gateway closes first
accesslog = "-" if os.environ.get("ACCESS_LOG", "").lower() in {"1", "true"} else None
errorlog = "-"

__all__ = [
    "accesslog",
    "bind",
    "control_socket_disable",
    "errorlog",
    "graceful_timeout",
    "keepalive",
    "on_exit",
    "on_starting",
    "threads",
    "when_ready",
    "worker_class",
    "workers",
]
