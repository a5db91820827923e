"""Builds py-consul clients from ConsulSettings.

py-consul is the maintained fork of python-consul and keeps its ``import consul`` name; unlike
python-consul it sends ACL tokens as the ``X-Consul-Token`` header. Its reads return the body
and ``X-Consul-Index`` only, so :class:`Client` keeps what the watcher also needs from the
last answer's headers.
"""

from __future__ import annotations

from typing import Any

import consul
import requests

from discovery.settings import ConsulSettings

# Timeout of a non-blocking call. Blocking queries get their wait on top (py-consul adds it).
REQUEST_TIMEOUT = 5.0
# Consul sets it on a list answer its ACLs shortened, for a request that had a token
# (``setResultsFilteredByACLs`` in agent/http.go); never to "false".
FILTERED_HEADER = "X-Consul-Results-Filtered-By-ACLs"


class Client(consul.Consul):  # type: ignore[misc]  # py-consul ships no type information
    """A py-consul client that remembers whether its last answer was filtered by ACLs."""

    filtered_by_acls = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ``http.session`` is the requests.Session py-consul's std client sends with; a
        # response hook is requests' public way to see every answer's headers.
        # tests/integration/test_acl_filtered_watch.py breaks if py-consul changes this.
        self.http.session.hooks["response"].append(self._remember)

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.filtered_by_acls = response.headers.get(FILTERED_HEADER, "").lower() == "true"


def make_client(settings: ConsulSettings, timeout: float = REQUEST_TIMEOUT) -> Client:
    """Return a new client. Use one per thread: it holds a ``requests.Session``."""
    return Client(
        host=settings.host,
        port=settings.port,
        scheme=settings.scheme,
        token=settings.token,
        connections_timeout=timeout,
    )
