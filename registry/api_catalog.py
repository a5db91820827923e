"""Read endpoints: /v1/health/*, /v1/catalog/* and /v1/status/*.

Health and catalog reads are blocking queries. Each reports the index Consul's state store
would (agent/consul/state/catalog.go): the per-service index for one service name, the checks
table for checks by state, the services table for the service list, the nodes table for nodes.
Entries the token may not read are filtered out, as Consul's ACL filter does for list endpoints
(agent/consul/acl.go ``aclFilter``): a service list needs service:read on each name; instances
and checks need node:read on their node as well.
``?passing`` drops an entry when any of its checks, node checks included, is not passing, so a
warning drops it too (``filterNonPassing`` in agent/health_endpoint.go). ``?tag`` may repeat;
an entry must carry every tag, compared case-insensitively (``serviceTagFilter``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import blocking, render
from .acl import Authorizer
from .app import App, Route
from .errors import bad_request
from .model import Check, Service
from .web import Request, Response, parse_go_bool


def health_service(app: App, request: Request, name: str) -> Response:
    """GET /v1/health/service/:name"""
    authz = _read_prelude(app, request)
    tags = request.query.get("tag", [])
    passing = _bool_param(request, "passing", "Invalid value for ?passing")
    if not name:
        raise bad_request("Missing service name")

    def query() -> tuple[int, list[Any]]:
        instances = [s for s in app.store.services() if s.name == name]
        index = app.store.service_index(name, bool(instances), with_checks=True)
        if not _can_read_service(authz, app, name):
            return index, []
        checks = app.store.checks()
        node_checks = [c for c in checks if not c.service_id]
        node_json = render.node(app.node, app.store.table_index("nodes"))
        entries = []
        for service in instances:
            if not _has_tags(service, tags):
                continue
            own = node_checks + [c for c in checks if c.service_id == service.service_id]
            if passing and any(c.status != "passing" for c in own):
                continue
            rendered = [render.check(c, app.node.name) for c in own]
            entries.append(render.health_entry(node_json, service, rendered))
        return index, entries

    return _answer(app, request, query)


def health_checks(app: App, request: Request, name: str) -> Response:
    """GET /v1/health/checks/:name"""
    authz = _read_prelude(app, request)
    if not name:
        raise bad_request("Missing service name")

    def query() -> tuple[int, list[Any]]:
        index = app.store.service_index(name, True, with_checks=True)
        checks = [c for c in app.store.checks() if c.service_id and c.service_name == name]
        return index, _render_checks(app, authz, checks)

    return _answer(app, request, query)


def health_state(app: App, request: Request, state: str) -> Response:
    """GET /v1/health/state/:state (any, passing, warning or critical)"""
    authz = _read_prelude(app, request)
    if not state:
        raise bad_request("Missing check state")

    def query() -> tuple[int, list[Any]]:
        checks = [c for c in app.store.checks() if state == "any" or c.status == state]
        return app.store.table_index("checks"), _render_checks(app, authz, checks)

    return _answer(app, request, query)


def catalog_services(app: App, request: Request, _: str) -> Response:
    """GET /v1/catalog/services"""
    authz = _read_prelude(app, request)

    def query() -> tuple[int, dict[str, list[str]]]:
        listing: dict[str, list[str]] = {}
        for service in app.store.services():
            if authz.allowed("service", "read", service.name):
                tags = listing.setdefault(service.name, [])
                tags.extend(t for t in service.tags if t not in tags)
        return app.store.table_index("services"), listing

    return _answer(app, request, query)


def catalog_service(app: App, request: Request, name: str) -> Response:
    """GET /v1/catalog/service/:name"""
    authz = _read_prelude(app, request)
    tags = request.query.get("tag", [])
    if not name:
        raise bad_request("Missing service name")

    def query() -> tuple[int, list[Any]]:
        instances = [s for s in app.store.services() if s.name == name]
        index = app.store.service_index(name, bool(instances), with_checks=False)
        if not _can_read_service(authz, app, name):
            return index, []
        chosen = [s for s in instances if _has_tags(s, tags)]
        return index, [render.catalog_service(app.node, s) for s in chosen]

    return _answer(app, request, query)


def catalog_nodes(app: App, request: Request, _: str) -> Response:
    """GET /v1/catalog/nodes"""
    authz = _read_prelude(app, request)

    def query() -> tuple[int, list[Any]]:
        index = app.store.table_index("nodes")
        if not authz.allowed("node", "read", app.node.name):
            return index, []
        return index, [render.node(app.node, index)]

    return _answer(app, request, query)


def status_leader(app: App, request: Request, _: str) -> Response:
    """GET /v1/status/leader: the server RPC address; no ACL applies."""
    return Response(body=f"{app.node.address}:8300")


def status_peers(app: App, request: Request, _: str) -> Response:
    """GET /v1/status/peers"""
    return Response(body=[f"{app.node.address}:8300"])


ROUTES = [
    Route("/v1/health/service/", ("GET",), health_service),
    Route("/v1/health/checks/", ("GET",), health_checks),
    Route("/v1/health/state/", ("GET",), health_state),
    Route("/v1/catalog/services", ("GET",), catalog_services),
    Route("/v1/catalog/service/", ("GET",), catalog_service),
    Route("/v1/catalog/nodes", ("GET",), catalog_nodes),
    Route("/v1/status/leader", ("GET",), status_leader),
    Route("/v1/status/peers", ("GET",), status_peers),
]


def _read_prelude(app: App, request: Request) -> Authorizer:
    authz = app.authorize(request)
    blocking.check_datacenter(request, app.config.datacenter)
    blocking.parse_wait(request)
    return authz


def _answer(app: App, request: Request, query: Callable[[], tuple[int, Any]]) -> Response:
    index, body = blocking.run(app.store, request, query)
    return Response(body=body, headers=blocking.meta_headers(request, index))


def _render_checks(app: App, authz: Authorizer, checks: list[Check]) -> list[Any]:
    return [render.check(c, app.node.name) for c in checks if _can_read_check(authz, app, c)]


def _can_read_check(authz: Authorizer, app: App, check: Check) -> bool:
    # filterHealthChecks: node:read always, and service:read too for a service's check.
    if not authz.allowed("node", "read", app.node.name):
        return False
    return not check.service_id or authz.allowed("service", "read", check.service_name)


def _can_read_service(authz: Authorizer, app: App, name: str) -> bool:
    return authz.allowed("service", "read", name) and authz.allowed("node", "read", app.node.name)


def _has_tags(service: Service, tags: list[str]) -> bool:
    own = {t.lower() for t in service.tags}
    return all(t.lower() in own for t in tags)


def _bool_param(request: Request, name: str, error: str) -> bool:
    # getBoolQueryParam: present without a value means true.
    if not request.has(name):
        return False
    value = request.param(name)
    parsed = True if value == "" else parse_go_bool(value)
    if parsed is None:
        raise bad_request(error)
    return parsed
