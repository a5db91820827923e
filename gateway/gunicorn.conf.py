"""gunicorn configuration of the gateway: ``gunicorn -c gateway/gunicorn.conf.py``.

Environment: ``GATEWAY_PORT`` (8080) and ``GATEWAY_BIND`` (0.0.0.0) for the public listener,
``GATEWAY_ADMIN_PORT`` (9090) and ``GATEWAY_ADMIN_BIND`` (127.0.0.1) for the admin API, and
``WEB_CONCURRENCY`` (workers, default 2: one event loop per core of a small machine); all are
parsed by :class:`gateway.settings.GatewaySettings`.
"""

import os
import shutil
import sys
import tempfile
from typing import Any

from discovery import logs
from discovery.errors import SettingsError
from gateway.settings import GatewaySettings

try:
    settings = GatewaySettings.from_env()  # fail here, naming the variable, before any worker
except SettingsError as exc:
    sys.exit(f"configuration error: {exc}")
# LOG_FORMAT and LOG_LEVEL: JSON lines (or text) for the master, the workers and gunicorn.
logs.configure(settings.log)
logconfig_dict = logs.dict_config(settings.log)

# Workers write their Prometheus metrics (prometheus_client's multiprocess mode) into a folder
# this master creates, inside PROMETHEUS_MULTIPROC_DIR if that is set, and removes on exit. It
# never deletes anything it did not create: PROMETHEUS_MULTIPROC_DIR=/tmp is safe.
METRICS_DIR = tempfile.mkdtemp(
    prefix="gateway-metrics-", dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR
# The workers' routing state for the routing page (gateway/state_share.py), inside that folder.
STATE_DIR = os.path.join(METRICS_DIR, "workers")
os.mkdir(STATE_DIR, 0o700)


def on_exit(server: Any) -> None:
    """Remove the metrics folder this master created."""
    shutil.rmtree(METRICS_DIR, ignore_errors=True)


def post_fork(server: Any, worker: Any) -> None:
    """Tell the new worker where the workers share their routing state."""
    worker.state_dir = STATE_DIR


def child_exit(server: Any, worker: Any) -> None:
    """Drop the live gauges and the routing state of a worker that exited."""
    from prometheus_client import multiprocess

    from gateway import state_share

    multiprocess.mark_process_dead(worker.pid)
    state_share.forget(STATE_DIR, worker.pid)


wsgi_app = "gateway.app:create_app()"
# The public listener, then the admin listener (gateway/worker.py tells them apart by address).
bind = [
    f"{settings.bind}:{settings.port}",
    f"{settings.admin_bind}:{settings.admin_port}",
]
workers = settings.workers
# One asyncio event loop per worker, HTTP parsed by llhttp (see gateway/worker.py and
# gateway/front.py). Keep-alive, header and body deadlines are the gateway's own settings.
worker_class = "gateway.worker.EventLoopWorker"
# gunicorn's control socket has one default path per user; replicas on one host would clash.
control_socket_disable = True
graceful_timeout = 10
errorlog = "-"
# ACCESS_LOG is the gateway's own setting (gateway/settings.py): the worker logs each request.
