"""The admin listener: ``/_gateway/`` only, behind its bearer token (or, without one, only to
its own host names), served by the Flask admin app in a worker thread.

Nothing under ``/_gateway/`` is served on the public listener, however it is spelled: it
reaches the proxy, which routes only by registered service names (404 otherwise).
"""

from __future__ import annotations

import hmac
import socket

from gateway import metrics
from gateway.admin.api import create_admin_app
from gateway.admin.wsgi import call_wsgi
from gateway.errors import ClientError
from gateway.metrics_share import MetricsShare
from gateway.policy import admin_host_allowed
from gateway.proxy import Proxy
from gateway.reply import Reply
from gateway.request import Request

ADMIN_PREFIX = b"/_gateway/"
HEALTH = b"/_gateway/health"
METRICS = b"/_gateway/metrics"  # open without the token: health checks carry no secrets
# Open too: the routing page's static files hold no data; the page sends the token itself.
OPEN = frozenset(
    {HEALTH, b"/_gateway/", b"/_gateway/routing-page.js", b"/_gateway/routing-page.css"}
)


class AdminPlane:
    """Serves the admin listener's requests of one worker."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.settings = proxy.settings
        self.app = create_admin_app(proxy)
        self.server_address = ("gateway", 0)
        token = self.settings.admin_token
        self._bearer = f"Bearer {token}".encode() if token else None
        # Without a token, the names the admin listener answers to (besides IP addresses and
        # localhost): a check against DNS rebinding, see gateway.policy.admin_host_allowed.
        own = {socket.gethostname().lower(), self.settings.admin_bind.lower()}
        self._admin_names = frozenset(own | self.settings.admin_hosts)

    async def __call__(self, req: Request, reply: Reply) -> None:
        """Serve a request of the admin listener."""
        path = req.target.partition(b"?")[0]
        if not path.startswith(ADMIN_PREFIX):
            raise ClientError(404, "not_found", "the admin listener serves /_gateway/ only")
        if self._bearer is None:
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
        await call_wsgi(self.app, req, reply, self.server_address)

    async def _publish_metrics(self) -> None:
        """Write this worker's metrics for a scrape, here on the event loop (it prunes them)."""
        metrics.set_last_sync(self.proxy.watcher.last_success)
        share: MetricsShare | None = self.app.extensions.get("metrics_share")
        if share is not None:
            await share.publish()

    def _authorized(self, req: Request) -> bool:
        assert self._bearer is not None
        given = [v for n, v in req.raw_headers if n.lower() == b"authorization"]
        return len(given) == 1 and hmac.compare_digest(given[0], self._bearer)
