"""Whether a request may be forwarded at all: its route, the paths never routed, and limits.

Each refusal is a :class:`gateway.errors.Refusal` with its status and a stable code:

- ``400 bad_path``: a ``.`` or ``..`` segment, however encoded;
- ``404 unknown_service``: no route (``503 not_synced`` before the catalog was first read);
- ``404 not_routed``: a service's own ``/admin`` or ``/metrics`` tree;
- ``503 no_passing_instance``: the service has nothing passing in Consul;
- ``429 too_many_requests``: this client is over the route's rate (``Retry-After``);
- ``503 too_many_requests_in_flight``: the service is at its in-flight limit
  (:meth:`Admission.hold`, around the forwarding itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from discovery.model import Service
from gateway import metrics
from gateway.access import Record
from gateway.errors import Refusal
from gateway.policy import client_address, has_dot_segment, is_admin_path
from gateway.ratelimit import Hold, InflightLimiter, Limits, RateLimiter, retry_after
from gateway.request import Request
from gateway.routing import Route, RouteTable
from gateway.settings import GatewaySettings

PRUNE_EVERY = 1.0  # seconds between sweeps of refilled rate-limit buckets


class Admitted:
    """A request that may be forwarded: where to, and within which limits."""

    __slots__ = ("limits", "route", "service", "target")

    def __init__(self, route: Route, service: Service, limits: Limits, target: bytes) -> None:
        self.route, self.service, self.limits = route, service, limits
        self.target = target  # the request target as the instance sees it (prefix removed)


class Admission:
    """The checks every request passes before an instance is chosen."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.defaults = Limits(settings.rate_limit, settings.rate_burst, settings.max_inflight)
        self.rate = RateLimiter(settings.rate_limit, settings.rate_burst)
        self.inflight = InflightLimiter(settings.max_inflight)
        self._pruning = False

    def admit(
        self,
        req: Request,
        record: Record,
        routes: RouteTable,
        services: Mapping[str, Service],
        limits: Mapping[str, Limits],
        synced: bool,
    ) -> Admitted:
        """The route and service of *req* (its service noted in *record*), or a Refusal."""
        path, _, query = req.target.partition(b"?")
        if has_dot_segment(path):
            raise Refusal(400, "bad_path", "the path has a '.' or '..' segment")
        matched = routes.match(path.decode("latin-1"))
        if matched is None:
            if not synced:
                raise Refusal(
                    503,
                    "not_synced",
                    "the gateway has not read the service catalog from Consul yet",
                )
            raise Refusal(
                404, "unknown_service", f"no service is routed at {path.decode('latin-1')}"
            )
        route, upstream_path = matched
        record.label = name = route.service
        raw_path = upstream_path.encode("latin-1")
        if name not in self.settings.expose_admin and is_admin_path(raw_path):
            raise Refusal(
                404, "not_routed", "the gateway does not route a service's /admin or /metrics paths"
            )
        service = services.get(name)
        if service is None or not service.passing:
            raise Refusal(
                503, "no_passing_instance", f"service {name!r} has no passing instance",
                service=name,
            )  # fmt: skip
        found = limits.get(name, self.defaults)
        if found.rate:
            self._take_token(req, route, found)
        return Admitted(route, service, found, raw_path + b"?" + query if query else raw_path)

    def _take_token(self, req: Request, route: Route, limits: Limits) -> None:
        """A token for this client and route, or 429 when none is left."""
        client = client_address(req.peer, req.headers.forwarded_for, self.settings.trusted_hops)
        wait = self.rate.check((client, route.prefix), limits.rate, limits.burst)
        if not self._pruning:
            self._pruning = True
            asyncio.get_running_loop().call_later(PRUNE_EVERY, self._prune)
        if wait:
            metrics.LIMITED.labels(route.service, "rate").inc()
            raise Refusal(
                429, "too_many_requests", "this client is over the route's request rate",
                (b"Retry-After: " + retry_after(wait).encode(),),
            )  # fmt: skip

    def _prune(self) -> None:
        """Drop refilled buckets once a second while there are any."""
        self.rate.prune()
        self._pruning = len(self.rate) > 0
        if self._pruning:
            asyncio.get_running_loop().call_later(PRUNE_EVERY, self._prune)

    def hold(self, admitted: Admitted) -> Hold:
        """``with admission.hold(a) as ok:`` counts the request in flight for its service;
        *ok* is False when the service is at its limit (then :meth:`busy` is the answer)."""
        return self.inflight.hold(admitted.route.service, admitted.limits.max_inflight)

    def busy(self, admitted: Admitted) -> Refusal:
        """The answer to a request over its service's in-flight limit."""
        name = admitted.route.service
        metrics.LIMITED.labels(name, "inflight").inc()
        return Refusal(
            503, "too_many_requests_in_flight",
            f"service {name!r} has too many requests in flight; try again",
            (b"Retry-After: 1",),
        )  # fmt: skip
