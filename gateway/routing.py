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
# \Z, not $: "$" also matches before a final newline, which would let "echo\n" through.
PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+\Z")
# A service name that is one path segment; "_" and "." may not lead ("/_gateway" is reserved).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*\Z")
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
    if not PREFIX.match(prefix):
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
    def build(
        cls,
        services: Mapping[str, Service],
        default_balancer: str,
        claims: Mapping[str, frozenset[str]] | None = None,
        previous: RouteTable | None = None,
    ) -> RouteTable:
        """Routes for every exposed service, owned as the gateway's configuration allows.

        A service owns ``/<its name>``. It may serve under another prefix only if *claims*
        (``GATEWAY_ROUTE_CLAIMS``) allows that prefix for it; otherwise it keeps its own. A
        prefix is never taken from its owner: a service's own name wins over any claim, and
        between two allowed claimants the one routed there before keeps it (then the first
        name). The refused claim is logged. Whoever can register in Consul thus cannot take
        another service's route by picking a name that sorts first.
        """
        claims = claims or {}
        held = {r.prefix: r.service for r in previous.routes} if previous else {}
        wanted: list[tuple[int, str, Route]] = []
        for name in sorted(services):
            route = route_for(services[name], default_balancer)
            if route is None:
                continue
            own = f"/{name}"
            if not NAME.match(name):
                log.warning("service %r: its name cannot be a path prefix; not routed", name)
                continue
            if route.prefix != own and route.prefix not in claims.get(name, frozenset()):
                log.warning(
                    "service %s: claim of %s refused (not in GATEWAY_ROUTE_CLAIMS); serving %s",
                    name, route.prefix, own,
                )  # fmt: skip
                route = Route(own, name, route.balancer)
            # Own names first, then claims the gateway routed before, then the rest by name.
            rank = 0 if route.prefix == own else 1 if held.get(route.prefix) == name else 2
            wanted.append((rank, name, route))
        routes: dict[str, Route] = {}
        for _, name, route in sorted(wanted, key=lambda w: (w[0], w[1])):
            owner = routes.get(route.prefix)
            if owner is not None:
                log.warning(
                    "service %s: prefix %s is owned by %s; claim refused",
                    name, route.prefix, owner.service,
                )  # fmt: skip
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
