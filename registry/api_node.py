"""Endpoints about the node itself: its checks and services, the datacenter list, the member
list and node maintenance.

As in agent/health_endpoint.go and agent/catalog_endpoint.go, an unknown node is no error:
/v1/health/node/:node answers ``[]`` and /v1/catalog/node/:node answers ``null``, both 200.
A node is named by its name or its ID. Node maintenance (agent/agent_endpoint.go
``AgentNodeMaintenance``) validates ``enable`` first, then needs node:write, then adds or
removes the critical ``_node_maintenance`` check, which fails every instance on the node.
"""

from __future__ import annotations

from typing import Any

from . import filter_fields, render
from .app import App
from .config import VERSION
from .errors import bad_request
from .reads import AclDrops, answer, can_read_check, entry_filter, kept, prelude
from .web import JSON_NULL, Request, Response, parse_go_bool


def health_node(app: App, request: Request, node: str) -> Response:
    """GET /v1/health/node/:node"""
    authz = prelude(app, request)
    keep = entry_filter(request, filter_fields.CHECK)
    drops = AclDrops(app, request)
    if not node:
        raise bad_request("Missing node name")

    def query() -> tuple[int, list[Any]]:
        index = app.store.table_index("checks")
        if not _is_this_node(app, node):
            return index, []
        checks = [c for c in app.store.checks() if drops.keep(can_read_check(authz, app, c))]
        return index, [render.check(c, app.node.name) for c in checks]

    return answer(app, request, query, kept(keep), drops)


def catalog_node(app: App, request: Request, node: str) -> Response:
    """GET /v1/catalog/node/:node; the filter runs on each service of ``Services``."""
    authz = prelude(app, request)
    keep = entry_filter(request, filter_fields.NODE_SERVICE)
    drops = AclDrops(app, request)
    if not node:
        raise bad_request("Missing node name")

    def query() -> tuple[int, object]:
        index = app.store.table_index("nodes", "services")
        if not _is_this_node(app, node):
            return index, JSON_NULL
        if not drops.keep(authz.allowed("node", "read", app.node.name)):
            return index, JSON_NULL  # filterNodeServices drops the whole node
        services = {
            s.service_id: render.node_service(s)
            for s in app.store.services()
            if drops.keep(authz.allowed("service", "read", s.name))
        }
        node_json = render.node(app.node, app.store.table_index("nodes"))
        return index, {"Node": node_json, "Services": services}

    def finish(body: object) -> object:
        if not isinstance(body, dict):
            return body
        chosen = {key: value for key, value in body["Services"].items() if keep(value)}
        return {**body, "Services": chosen}

    return answer(app, request, query, finish, drops)


def catalog_datacenters(app: App, request: Request, _: str) -> Response:
    """GET /v1/catalog/datacenters: this one; no ACL applies."""
    return Response(body=[app.config.datacenter])


def agent_members(app: App, request: Request, _: str) -> Response:
    """GET /v1/agent/members: the LAN pool, which is this node (node:read to see it)."""
    authz = app.authorize(request)
    drops = AclDrops(app, request)
    if not drops.keep(authz.allowed("node", "read", app.node.name)):
        return Response(body=[], headers=drops.headers())
    return Response(body=[render.member(app.node, VERSION)])


def node_maintenance(app: App, request: Request, _: str) -> Response:
    """PUT /v1/agent/maintenance?enable=&reason="""
    if not request.has("enable"):
        raise bad_request("Missing value for enable")
    enable = parse_go_bool(request.param("enable"))
    if enable is None:
        raise bad_request(f'Invalid value for enable: "{request.param("enable")}"')
    app.authorize(request).require("node", "write", app.node.name)
    app.agent.set_node_maintenance(enable, request.param("reason"))
    return Response()


def _is_this_node(app: App, node: str) -> bool:
    return node in (app.node.name, app.node.node_id)
