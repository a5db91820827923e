"""The gateway's entry point: the proxy on the public listener, the Flask admin app on its own.

gunicorn loads ``gateway.app:create_app()`` in each worker (see gateway/worker.py); each worker
builds its own watcher, so every worker routes from a live Consul snapshot without sharing
state. A worker first reads the whole catalog (for up to ``GATEWAY_STARTUP_WAIT``) and only then
accepts connections, so a new or restarted worker never answers 404 for a service it has simply
not read yet.
"""

from __future__ import annotations

import hmac
import logging
import socket
from collections.abc import Coroutine
from typing import Any

from discovery.watcher import CatalogWatcher
from gateway import metrics
from gateway.admin import create_admin_app
from gateway.metrics_share import MetricsShare
from gateway.policy import admin_host_allowed
from gateway.proxy import Proxy
from gateway.request import ClientError, Request
from gateway.settings import GatewaySettings
from gateway.wsgi_bridge import call_wsgi

ADMIN_PREFIX = b"/_gateway/"
HEALTH = b"/_gateway/health"
METRICS = b"/_gateway/metrics"  # open without the token: health checks carry no secrets
# Open too: the routing page's static files hold no data; the page sends the token itself.
OPEN = frozenset(
    {HEALTH, b"/_gateway/", b"/_gateway/routing-page.js", b"/_gateway/routing-page.css"}
)
log = logging.getLogger(__name__)


class Gateway:
    """The two planes: the proxy on the public listener, the admin API on its own listener.

    Nothing under ``/_gateway/`` is served on the public listener, however it is spelled: it
    reaches the proxy, which routes only by registered service names (404 otherwise).
    """

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.settings = proxy.settings
        self.admin_app = create_admin_app(proxy)
        self.server_address = ("gateway", 0)
        token = self.settings.admin_token
        self._bearer = f"Bearer {token}".encode() if token else None
        # Without a token, the names the admin listener answers to (besides IP addresses and
        # localhost): a check against DNS rebinding, see gateway.policy.admin_host_allowed.
        own = {socket.gethostname().lower(), self.settings.admin_bind.lower()}
        self._admin_names = frozenset(own | self.settings.admin_hosts)

    def __call__(self, req: Request) -> Coroutine[Any, Any, None]:
        """Serve a request of the public listener."""
        return self.proxy.handle(req)

    async def admin(self, req: Request) -> None:
        """Serve a request of the admin listener."""
        path = req.target.partition(b"?")[0]
        if not path.startswith(ADMIN_PREFIX):
            raise ClientError(404, "not_found", "the admin listener serves /_gateway/ only")
        if self._bearer is None:
            assert req.headers is not None
            if not admin_host_allowed(req.headers.host, self._admin_names):
                raise ClientError(
                    421, "misdirected_request",
                    "without GATEWAY_ADMIN_TOKEN the admin listener answers only to its own "
                    "names: an IP address, localhost, this host's name or GATEWAY_ADMIN_HOSTS",
                )  # fmt: skip
        elif path not in OPEN and not self._authorized(req):
            raise ClientError(401, "unauthorized", "the admin API needs its bearer token")
        if path == METRICS:
            await self._publish_metrics()  # this worker's counts, up to this moment
        await call_wsgi(self.admin_app, req, self.server_address)

    async def _publish_metrics(self) -> None:
        """Write this worker's metrics for a scrape, here on the event loop (it prunes them)."""
        metrics.set_last_sync(self.proxy.watcher.last_success)
        share: MetricsShare | None = self.admin_app.extensions.get("metrics_share")
        if share is not None:
            await share.publish()

    def _authorized(self, req: Request) -> bool:
        assert self._bearer is not None
        given = [v for n, v in req.raw_headers if n.lower() == b"authorization"]
        return len(given) == 1 and hmac.compare_digest(given[0], self._bearer)


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
