"""Builds py-consul clients from ConsulSettings.

py-consul is the maintained fork of python-consul and keeps its ``import consul`` name; unlike
python-consul it sends ACL tokens as the ``X-Consul-Token`` header.
"""

from __future__ import annotations

import consul

from discovery.settings import ConsulSettings

# Timeout of a non-blocking call. Blocking queries get their wait on top (py-consul adds it).
REQUEST_TIMEOUT = 5.0


def make_client(settings: ConsulSettings, timeout: float = REQUEST_TIMEOUT) -> consul.Consul:
    """Return a new client. Use one per thread: it holds a ``requests.Session``."""
    client = consul.Consul(
        host=settings.host,
        port=settings.port,
        scheme=settings.scheme,
        token=settings.token,
        connections_timeout=timeout,
    )
    return client
