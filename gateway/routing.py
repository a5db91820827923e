"""Routes from Consul service names: ``/<service>/<path>`` goes to ``<service>``'s instances.

A service changes its route with tags or meta (meta wins when both are set):

=====================  =========================  =========================================
tag                    meta                       effect
=====================  =========================  =========================================
``gateway.expose=no``  ``gateway-expose: no``     no route at all (internal services)
``gateway.prefix=/x``  ``gateway-prefix: /x``     serve under ``/x`` instead of ``/<name>``
``gateway.lb=NAME``    ``gateway-lb: NAME``       balancer for this service
=====================  =========================  =========================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from discovery.balancer import STRATEGIES
from discovery.model import Service

log = logging.getLogger(__name__)
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
FALSE = {"no", "false", "0", "off"}


@dataclass(frozen=True, slots=True)
class Route:
    """A path prefix served by one service, with that service's balancer name."""

    prefix: str
    service: str
    balancer: str


def service_options(service: Service) -> dict[str, str]:
    """The ``gateway.*`` tags and ``gateway-*`` meta of *service*, as one mapping."""
    options: dict[str, str] = {}
    for tag in service.tags:
        key, sep, value = tag.partition("=")
        if sep and key.startswith("gateway."):
            options[key.removeprefix("gateway.")] = value
    for key, value in service.meta.items():
        if key.startswith("gateway-"):
            options[key.removeprefix("gateway-")] = value
    return options


def route_for(service: Service, default_balancer: str) -> Route | None:
    """The route *service* asks for, or None when it opts out; bad options fall back."""
    options = service_options(service)
    if options.get("expose", "").lower() in FALSE:
        return None
    prefix = options.get("prefix", f"/{service.name}").rstrip("/") or f"/{service.name}"
    if not _PREFIX.match(prefix):
        log.warning("service %s: ignoring invalid gateway prefix %r", service.name, prefix)
        prefix = f"/{service.name}"
    balancer = options.get("lb", default_balancer)
    if balancer not in STRATEGIES:
        log.warning(
            "service %s: unknown balancer %r, using %s", service.name, balancer, default_balancer
        )
        balancer = default_balancer
    return Route(prefix, service.name, balancer)


class RouteTable:
    """Longest-prefix matching of request paths, on whole path segments."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: (-len(r.prefix), r.prefix))
        # Most prefixes are one segment: a dict lookup serves them without a scan.
        self._single = {r.prefix: r for r in self.routes if r.prefix.count("/") == 1}
        self._multi = [r for r in self.routes if r.prefix.count("/") > 1]

    @classmethod
    def build(cls, services: Mapping[str, Service], default_balancer: str) -> RouteTable:
        """Routes for every exposed service; on a prefix clash the first name wins."""
        routes: dict[str, Route] = {}
        for name in sorted(services):
            route = route_for(services[name], default_balancer)
            if route is None:
                continue
            if route.prefix in routes:
                log.warning(
                    "prefix %s of %s is taken by %s",
                    route.prefix,
                    name,
                    routes[route.prefix].service,
                )
                continue
            routes[route.prefix] = route
        return cls(list(routes.values()))

    def match(self, path: str) -> tuple[Route, str] | None:
        """The route for *path* and the path to send upstream (prefix removed), or None."""
        for route in self._multi:
            if path == route.prefix or path.startswith(route.prefix + "/"):
                return route, path[len(route.prefix) :] or "/"
        end = path.find("/", 1)
        first = path if end < 0 else path[:end]
        single = self._single.get(first)
        if single is None:
            return None
        return single, "/" if end < 0 else path[end:]
