"""gunicorn configuration of the gateway: ``gunicorn -c gateway/gunicorn.conf.py``.

Environment: ``GATEWAY_PORT`` (8080) and ``GATEWAY_BIND`` (0.0.0.0) for the public listener,
``GATEWAY_ADMIN_PORT`` (9090) and ``GATEWAY_ADMIN_BIND`` (127.0.0.1) for the admin API, and
``WEB_CONCURRENCY`` (workers, default 2: one event loop per core of a small machine); all are
parsed by :class:`gateway.settings.GatewaySettings`.
"""

import os
import sys
from typing import Any

from discovery import logs, metrics_dir
from discovery.errors import SettingsError
from gateway.settings import GatewaySettings

try:
    settings = GatewaySettings.from_env()  # fail here, naming the variable, before any worker
except SettingsError as exc:
    sys.exit(f"configuration error: {exc}")
# LOG_FORMAT and LOG_LEVEL: JSON lines (or text) for the master, the workers and gunicorn.
logs.configure(settings.log)
logconfig_dict = logs.dict_config(settings.log)

# The workers share their metrics (gateway/metrics_share.py) and their routing state (in
# "workers", gateway/admin/share.py) through a folder this master creates, inside
# PROMETHEUS_MULTIPROC_DIR if that is set, and removes on exit. It never deletes anything it did
# not create: PROMETHEUS_MULTIPROC_DIR=/tmp is safe. The folder is made in when_ready, once the
# sockets are bound (see discovery/metrics_dir.py), and not exported: the gateway's metrics are
# its own files, not prometheus_client's multiprocess mode.
FOLDER = metrics_dir.master_folder("gateway-metrics-")


def _made() -> str | None:
    return FOLDER.made.path if FOLDER.made is not None else None


def when_ready(server: Any) -> None:
    """Make the shared folder, now that the sockets are bound and before any worker starts."""
    from gateway.compiled import running_compiled

    os.makedirs(os.path.join(FOLDER.create(export=False).path, "workers"), 0o700, exist_ok=True)
    server.log.info(
        "proxy core: %s",
        "compiled (mypyc)" if running_compiled() else "plain Python (make compile builds it)",
    )


def on_exit(server: Any) -> None:
    """Remove the shared folder this master created."""
    FOLDER.remove()


def post_fork(server: Any, worker: Any) -> None:
    """Tell the new worker where the workers share their metrics and routing state."""
    folder = _made()
    worker.metrics_dir = folder
    worker.state_dir = os.path.join(folder, "workers") if folder else None


def child_exit(server: Any, worker: Any) -> None:
    """Keep the counts of a worker that exited, and drop its routing state."""
    from gateway import metrics_share
    from gateway.admin import share as state_share

    folder = _made()
    if folder is not None:
        metrics_share.fold_exited(folder, worker.pid)
        state_share.forget(os.path.join(folder, "workers"), worker.pid)


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
