"""Read endpoints: /v1/health/*, /v1/catalog/* and /v1/status/*.

Health and catalog reads are blocking queries. Each reports the index Consul's state store
would (agent/consul/state/catalog.go): the per-service index for one service name, the checks
table for checks by state, the services table for the service list, the nodes table for nodes.
Entries the token may not read are filtered out, as Consul's ACL filter does for list endpoints
(agent/consul/acl.go ``aclFilter``): a service list needs service:read on each name; instances
and checks need node:read on their node as well. An answer so shortened carries
``X-Consul-Results-Filtered-By-ACLs: true`` when the request had a token (``reads.AclDrops``).
``?passing`` drops an entry when any of its checks, node checks included, is not passing, so a
warning drops it too (``filterNonPassing`` in agent/health_endpoint.go). ``?tag`` may repeat;
an entry must carry every tag, compared case-insensitively (``serviceTagFilter``).
``?filter=`` runs on each rendered entry with the fields of ``filter_fields``; ``?node-meta=``
keeps entries whose node carries every given ``key:value``.
"""

from __future__ import annotations

from typing import Any

from . import blocking, filter_fields, render
from .app import App
from .errors import bad_request
from .model import Service
from .reads import (
    AclDrops,
    answer,
    can_read_service,
    entry_filter,
    kept,
    node_meta_matches,
    prelude,
)
from .reads import render_checks as _render_checks
from .web import Request, Response, parse_go_bool


def health_service(app: App, request: Request, name: str) -> Response:
    """GET /v1/health/service/:name"""
    authz = prelude(app, request)
    tags = request.query.get("tag", [])
    passing = _bool_param(request, "passing", "Invalid value for ?passing")
    keep = entry_filter(request, filter_fields.HEALTH_ENTRY)
    drops = AclDrops(app, request)
    if not name:
        raise bad_request("Missing service name")

    def query() -> tuple[int, list[Any]]:
        instances = [s for s in app.store.services() if s.name == name]
        index = app.store.service_index(name, bool(instances), with_checks=True)
        if not node_meta_matches(request):
            return index, []
        readable = can_read_service(authz, app, name)
        checks = app.store.checks()
        node_checks = [c for c in checks if not c.service_id]
        node_json = render.node(app.node, app.store.table_index("nodes"))
        entries = []
        for service in instances:
            # The ACL filter runs on the tag-filtered answer, before ?passing (an HTTP-side
            # filter, filterNonPassing).
            if not _has_tags(service, tags) or not drops.keep(readable):
                continue
            own = node_checks + [c for c in checks if c.service_id == service.service_id]
            if passing and any(c.status != "passing" for c in own):
                continue
            rendered = [render.check(c, app.node.name) for c in own]
            entries.append(render.health_entry(node_json, service, rendered))
        return index, entries

    return answer(app, request, query, kept(keep), drops)


def health_checks(app: App, request: Request, name: str) -> Response:
    """GET /v1/health/checks/:name"""
    authz = prelude(app, request)
    keep = entry_filter(request, filter_fields.CHECK)
    drops = AclDrops(app, request)
    if not name:
        raise bad_request("Missing service name")

    def query() -> tuple[int, list[Any]]:
        index = app.store.service_index(name, True, with_checks=True)
        if not node_meta_matches(request):
            return index, []
        checks = [c for c in app.store.checks() if c.service_id and c.service_name == name]
        return index, _render_checks(app, authz, checks, drops)

    return answer(app, request, query, kept(keep), drops)


def health_state(app: App, request: Request, state: str) -> Response:
    """GET /v1/health/state/:state (any, passing, warning or critical)"""
    authz = prelude(app, request)
    keep = entry_filter(request, filter_fields.CHECK)
    drops = AclDrops(app, request)
    if not state:
        raise bad_request("Missing check state")

    def query() -> tuple[int, list[Any]]:
        index = app.store.table_index("checks")
        if not node_meta_matches(request):
            return index, []
        checks = [c for c in app.store.checks() if state == "any" or c.status == state]
        return index, _render_checks(app, authz, checks, drops)

    return answer(app, request, query, kept(keep), drops)


def catalog_services(app: App, request: Request, _: str) -> Response:
    """GET /v1/catalog/services; the filter runs on each instance, as ``structs.ServiceNode``"""
    authz = prelude(app, request)
    keep = entry_filter(request, filter_fields.CATALOG_SERVICE)
    drops = AclDrops(app, request)

    def query() -> tuple[int, list[Any]]:
        index = app.store.table_index("services")
        if not node_meta_matches(request):
            return index, []
        instances = app.store.services()
        allowed = [s for s in instances if drops.keep(authz.allowed("service", "read", s.name))]
        return index, [render.catalog_service(app.node, s) for s in allowed]

    def finish(entries: list[Any]) -> dict[str, list[str]]:
        listing: dict[str, list[str]] = {}
        for entry in entries:
            if keep(entry):
                tags = listing.setdefault(entry["ServiceName"], [])
                tags.extend(t for t in entry["ServiceTags"] if t not in tags)
        return listing

    return answer(app, request, query, finish, drops)


def catalog_service(app: App, request: Request, name: str) -> Response:
    """GET /v1/catalog/service/:name"""
    authz = prelude(app, request)
    tags = request.query.get("tag", [])
    keep = entry_filter(request, filter_fields.CATALOG_SERVICE)
    drops = AclDrops(app, request)
    if not name:
        raise bad_request("Missing service name")

    def query() -> tuple[int, list[Any]]:
        instances = [s for s in app.store.services() if s.name == name]
        index = app.store.service_index(name, bool(instances), with_checks=False)
        if not node_meta_matches(request):
            return index, []
        readable = can_read_service(authz, app, name)
        chosen = [
            render.catalog_service(app.node, s)
            for s in instances
            if _has_tags(s, tags) and drops.keep(readable)
        ]
        return index, chosen

    return answer(app, request, query, kept(keep), drops)


def catalog_nodes(app: App, request: Request, _: str) -> Response:
    """GET /v1/catalog/nodes"""
    authz = prelude(app, request)
    keep = entry_filter(request, filter_fields.NODE)
    drops = AclDrops(app, request)

    def query() -> tuple[int, list[Any]]:
        index = app.store.table_index("nodes")
        if not node_meta_matches(request):
            return index, []
        if not drops.keep(authz.allowed("node", "read", app.node.name)):
            return index, []
        return index, [render.node(app.node, index)]

    return answer(app, request, query, kept(keep), drops)


def status_leader(app: App, request: Request, _: str) -> Response:
    """GET /v1/status/leader: the server RPC address; no ACL applies."""
    blocking.check_datacenter(request, app.config.datacenter)
    return Response(body=render.server_address(app.node))


def status_peers(app: App, request: Request, _: str) -> Response:
    """GET /v1/status/peers"""
    blocking.check_datacenter(request, app.config.datacenter)
    return Response(body=[render.server_address(app.node)])


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
