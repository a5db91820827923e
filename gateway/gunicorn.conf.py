"""gunicorn configuration of the gateway: ``gunicorn -c gateway/gunicorn.conf.py``.

Environment: ``GATEWAY_PORT`` (8080), ``GATEWAY_BIND`` (0.0.0.0), ``WEB_CONCURRENCY`` (workers,
default 2: one per core of a small machine) and ``WEB_THREADS`` (threads per worker, 16).
"""

import os
import sys

from discovery import env
from discovery.errors import SettingsError
from gateway.settings import GatewaySettings

try:
    GatewaySettings.from_env()  # fail here, naming the variable, before any worker starts
    port = env.get_int(os.environ, "GATEWAY_PORT", 8080, 1, 65535)
    workers = env.get_int(os.environ, "WEB_CONCURRENCY", 2, 1, 64)
    threads = env.get_int(os.environ, "WEB_THREADS", 16, 1, 1024)
except SettingsError as exc:
    sys.exit(f"configuration error: {exc}")

wsgi_app = "gateway.app:create_app()"
bind = [f"{os.environ.get('GATEWAY_BIND', '0.0.0.0')}:{port}"]
worker_class = "gthread"
# gunicorn's control socket has one default path per user; replicas on one host would clash.
control_socket_disable = True
keepalive = 75
graceful_timeout = 10
errorlog = "-"
accesslog = "-" if os.environ.get("ACCESS_LOG", "").lower() in {"1", "true"} else None
