"""Notices when Consul hides entries from the watcher's token, and says so once per change.

With ACLs on, Consul does not refuse a list read the token may not fully see: it answers 200
with what the token may read and sets ``X-Consul-Results-Filtered-By-ACLs: true``. A gateway
token without ``node:read`` thus sees every service with no instance at all, and one without
``service:read`` on some names does not see those services. Nothing fails, so the header is
the only sign; :class:`AclFilterAlarm` turns it into one warning when a watch starts being
filtered and one line when it stops, not a line per read.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

#: What a gateway token needs to see every service and instance (README "ACLs").
NEEDED = 'node_prefix "" { policy = "read" } and service_prefix "" { policy = "read" }'


class AclFilterAlarm:
    """The watches whose last answer Consul filtered by ACLs; safe to use from any thread."""

    def __init__(self, consul_url: str) -> None:
        self.consul_url = consul_url
        self._lock = threading.Lock()
        self._filtered: set[str] = set()

    @property
    def filtered(self) -> list[str]:
        """The watched paths whose last answer was filtered, sorted."""
        with self._lock:
            return sorted(self._filtered)

    def observe(self, path: str, filtered: bool) -> None:
        """Record the last answer of the watch on *path*; log only a change of state."""
        with self._lock:
            if filtered == (path in self._filtered):
                return
            if filtered:
                self._filtered.add(path)
            else:
                self._filtered.discard(path)
        if filtered:
            log.warning(
                "Consul at %s filtered %s by ACLs (X-Consul-Results-Filtered-By-ACLs): the "
                "token may not read some of what it lists, so services or instances are "
                "missing from the routes. A gateway token needs %s",
                self.consul_url,
                path,
                NEEDED,
            )
        else:
            log.info("Consul at %s no longer filters %s by ACLs", self.consul_url, path)
