"""The application: shared state for handlers, and routing à la Go's ``http.ServeMux``.

Patterns ending in "/" match by prefix and hand the rest of the path to the handler; others
match exactly; the longest pattern wins, as in Consul's mux (agent/http_register.go). The path
arrives URL-decoded, as Go's ``URL.Path`` does, so ``/v1/health/service/a%23b`` reads "a#b".

Where the registry differs from Consul it refuses loudly (the table is ``endpoints.ROUTES``):
a query parameter the route does not list answers 400, a /v1/ path no route serves answers 501
(a 404 would read as "no such key" or "no such service" to Consul's clients).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .acl import ALLOW_ALL, Authorizer, request_token
from .acl_state import AclState
from .agent import Agent
from .config import Config
from .errors import bad_request
from .model import Node
from .store import Store
from .web import Request, Response


@dataclass
class App:
    """Everything a handler may use."""

    config: Config
    node: Node
    store: Store
    agent: Agent
    #: None while ACLs are disabled.
    acl: AclState | None = None

    def authorize(self, request: Request) -> Authorizer:
        """Resolve the request's token (403 "ACL not found" for an unknown one)."""
        if self.acl is None:
            return ALLOW_ALL
        return self.acl.resolve(self.request_secret(request))

    @staticmethod
    def request_secret(request: Request) -> str:
        """The token the request carries, or "" for none."""
        return request_token(request.query, request.headers)


Handler = Callable[[App, Request, str], Response]


@dataclass(frozen=True)
class Route:
    """One registered endpoint and the query parameters it accepts (``COMMON_PARAMS`` aside)."""

    pattern: str
    methods: tuple[str, ...]
    handler: Handler
    params: tuple[str, ...]


class Router:
    """Finds the route for a request and enforces its methods and query parameters."""

    def __init__(
        self,
        app: App,
        routes: list[Route],
        common: tuple[str, ...],
        refused: dict[str, str],
    ) -> None:
        self._app = app
        self._routes = sorted(routes, key=lambda r: len(r.pattern), reverse=True)
        self._common = common
        self._refused = refused

    def __call__(self, request: Request) -> Response:
        """Dispatch one request."""
        if request.path == "/":
            return Response(text="Consul Agent")
        for route in self._routes:
            if route.pattern.endswith("/"):
                if not request.path.startswith(route.pattern):
                    continue
                rest = request.path[len(route.pattern) :]
            elif request.path == route.pattern:
                rest = ""
            else:
                continue
            allow = ",".join(("OPTIONS", *route.methods))
            if request.method == "OPTIONS":
                return Response(headers={"Allow": allow})
            if request.method not in route.methods:
                text = f"method {request.method} not allowed"
                return Response(status=405, text=text, headers={"Allow": allow})
            self._check_params(route, request)
            return route.handler(self._app, request, rest)
        if request.path.startswith("/v1/"):
            text = f"the bundled registry does not serve {request.path} (see its README section)"
            return Response(status=501, text=text)
        return Response(status=404, text="")

    def _check_params(self, route: Route, request: Request) -> None:
        for name in request.query:
            if name in route.params or name in self._common:
                continue
            reason = self._refused.get(name, "the bundled registry does not support it")
            accepted = ", ".join(sorted({*route.params, *self._common}))
            raise bad_request(
                f'Query parameter "{name}" on {route.pattern}: {reason} (accepted: {accepted})'
            )
        for name, header in (("ns", "x-consul-namespace"), ("partition", "x-consul-partition")):
            values = [*request.query.get(name, []), request.headers.get(header, "")]
            if any(value not in ("", "default") for value in values):
                raise bad_request(f'Query parameter "{name}": {self._refused[name]}')
