"""The application: shared state for handlers, and routing à la Go's ``http.ServeMux``.

Patterns ending in "/" match by prefix and hand the rest of the path to the handler; others
match exactly; the longest pattern wins, as in Consul's mux (agent/http_register.go).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .acl import ALLOW_ALL, Authorizer, request_token
from .acl_state import AclState
from .agent import Agent
from .config import Config
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
    """One registered endpoint."""

    pattern: str
    methods: tuple[str, ...]
    handler: Handler


class Router:
    """Finds the route for a request and enforces its methods."""

    def __init__(self, app: App, routes: list[Route]) -> None:
        self._app = app
        self._routes = sorted(routes, key=lambda r: len(r.pattern), reverse=True)

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
            return route.handler(self._app, request, rest)
        return Response(status=404, text="")
