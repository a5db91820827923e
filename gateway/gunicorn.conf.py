"""gunicorn configuration of the gateway: ``gunicorn -c gateway/gunicorn.conf.py``.

Environment: ``GATEWAY_PORT`` (8080), ``GATEWAY_BIND`` (0.0.0.0) and ``WEB_CONCURRENCY``
(workers, default 2: one event loop per core of a small machine).
"""

import os
import shutil
import sys
import tempfile
from typing import Any

from discovery import env
from discovery.errors import SettingsError
from discovery.lifecycle import configure_logging
from gateway.settings import GatewaySettings

configure_logging()
try:
    GatewaySettings.from_env()  # fail here, naming the variable, before any worker starts
    port = env.get_int(os.environ, "GATEWAY_PORT", 8080, 1, 65535)
    workers = env.get_int(os.environ, "WEB_CONCURRENCY", 2, 1, 64)
except SettingsError as exc:
    sys.exit(f"configuration error: {exc}")

# Workers write their Prometheus metrics here (prometheus_client's multiprocess mode); set
# before any worker imports prometheus_client, and emptied so old workers' values never count.
METRICS_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="gateway-metrics-")
)
shutil.rmtree(METRICS_DIR, ignore_errors=True)
os.makedirs(METRICS_DIR, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """Drop the live gauges of a worker that exited (its counters keep counting)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


wsgi_app = "gateway.app:create_app()"
bind = [f"{os.environ.get('GATEWAY_BIND', '0.0.0.0')}:{port}"]
# One asyncio event loop per worker, HTTP parsed by llhttp (see gateway/worker.py and
# gateway/front.py). Keep-alive, header and body deadlines are the gateway's own settings.
worker_class = "gateway.worker.EventLoopWorker"
# gunicorn's control socket has one default path per user; replicas on one host would clash.
control_socket_disable = True
graceful_timeout = 10
errorlog = "-"
# ACCESS_LOG is the gateway's own setting (gateway/settings.py): the worker logs each request.
