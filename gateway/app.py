"""The gateway's entry point: the proxy on the public listener, the admin plane on its own.

gunicorn loads ``gateway.app:create_app()`` in each worker (see gateway/worker.py); each worker
builds its own watcher, so every worker routes from a live Consul snapshot without sharing
state. A worker first reads the whole catalog (for up to ``GATEWAY_STARTUP_WAIT``) and only then
accepts connections, so a new or restarted worker never answers 404 for a service it has simply
not read yet.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from discovery.watcher import CatalogWatcher
from gateway.admin.plane import AdminPlane
from gateway.proxy import Proxy
from gateway.reply import Reply
from gateway.request import Request
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class Gateway:
    """The two planes of one worker: the proxy on the public listener (:attr:`proxy`), the
    admin API on its own (:attr:`admin`)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.settings = proxy.settings
        self.admin = AdminPlane(proxy)

    def __call__(self, req: Request, reply: Reply) -> Coroutine[Any, Any, None]:
        """Serve a request of the public listener."""
        return self.proxy.handle(req, reply)


def create_app(settings: GatewaySettings | None = None, start: bool = True) -> Gateway:
    """Build the gateway; with *start*, begin watching Consul at once."""
    settings = settings or GatewaySettings.from_env()
    watcher = CatalogWatcher(
        settings.consul,
        wait=settings.watch_wait,
        snapshot_path=settings.snapshot_file,
        resync_grace=settings.resync_grace,
        min_interval=settings.watch_min_interval,
    )
    gateway = Gateway(Proxy(settings, watcher))
    if start:
        watcher.start()
        if not watcher.wait_ready(settings.startup_wait):
            log.warning(
                "no full read of the Consul catalog after %.1fs (%s); serving %s",
                settings.startup_wait,
                watcher.last_error or "no answer yet",
                "from the snapshot file" if watcher.from_snapshot_file else "503 until it arrives",
            )
    return gateway
