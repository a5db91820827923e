"""Agent endpoints for the node and its services: /v1/agent/self, services, maintenance.

Order of validation, status codes and texts follow agent/agent_endpoint.go and the ACL vetting
in agent/acl.go: a write about an unknown service answers 404 ("Unknown service ID ...")
before any permission check; a known one needs service:write.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import blocking, decode, filter_fields, render
from .acl import Authorizer
from .app import App
from .config import VERSION
from .durations import format_duration
from .errors import bad_request, not_found
from .reads import AclDrops, entry_filter
from .web import Request, Response, parse_go_bool


def agent_self(app: App, request: Request, _: str) -> Response:
    """GET /v1/agent/self; Config.Version names the registry.

    The top-level keys are those of Consul's ``Self`` (agent/agent_endpoint.go): ``Member`` is
    the node's own entry of /v1/agent/members (both are serf.Member), ``Coord`` a fresh
    agent's coordinate, ``Meta`` the node's metadata, and ``xDS`` says that no xDS server runs
    (no proxies, gRPC ports -1: Consul's value for a port turned off).
    """
    app.authorize(request).require("agent", "read", app.node.name)
    config = app.config
    return Response(
        body={
            "Config": {
                "Datacenter": config.datacenter,
                "PrimaryDatacenter": config.datacenter,
                "NodeName": app.node.name,
                "NodeID": app.node.node_id,
                "Revision": "",
                "Server": True,
                "Version": VERSION,
                "BuildDate": "",
            },
            "DebugConfig": {
                "DevMode": True,
                "ACLsEnabled": config.acl_enabled,
                "CheckDeregisterIntervalMin": _go_seconds(config.min_deregister_after),
                "CheckReapInterval": _go_seconds(config.reap_interval),
            },
            "Coord": render.fresh_coordinate(),
            "Member": render.member(app.node, VERSION),
            # Clients compare leader_addr with /v1/status/leader to find the leader.
            "Stats": {
                "consul": {
                    "server": "true",
                    "leader": "true",
                    "leader_addr": render.server_address(app.node),
                    "bootstrap": "true",
                    "known_datacenters": "1",
                    "acl": "enabled" if config.acl_enabled else "disabled",
                }
            },
            "Meta": render.node_meta(),
            "xDS": {
                "SupportedProxies": {},
                "Port": -1,
                "Ports": {"Plaintext": -1, "TLS": -1},
            },
        }
    )


def agent_services(app: App, request: Request, _: str) -> Response:
    """GET /v1/agent/services[?filter=]"""
    authz = app.authorize(request)
    keep = entry_filter(request, filter_fields.AGENT_SERVICE)
    drops = AclDrops(app, request)
    with app.store.lock:
        services = {
            s.service_id: render.agent_service(s, app.config.datacenter)
            for s in app.store.services()
            if s.local and drops.keep(authz.allowed("service", "read", s.name))
        }
    body = {key: value for key, value in services.items() if keep(value)}
    return Response(body=body, headers=drops.headers())


def agent_service(app: App, request: Request, service_id: str) -> Response:
    """GET /v1/agent/service/:id, with hash-based blocking on ``?hash=``."""
    options = blocking.parse_wait(request)
    authz = app.authorize(request)
    wanted = request.param("hash")

    def query() -> tuple[str, dict[str, Any]]:
        service = app.store.service(service_id)
        if service is None or not service.local:
            raise not_found(f"unknown service ID: {service_id}")
        authz.require("service", "read", service.name)
        body = render.agent_service(service, app.config.datacenter)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return digest, {**body, "ContentHash": digest}

    timeout = blocking.query_timeout(options.max_query_time) if wanted else 0.0
    digest, body = app.store.block(
        query, lambda result: result[0] != wanted, timeout, request.cancel
    )
    return Response(body=body, headers={"X-Consul-ContentHash": digest})


def register_service(app: App, request: Request, _: str) -> Response:
    """PUT /v1/agent/service/register[?replace-existing-checks]"""
    registration = decode.service_registration(request.body)
    authz = app.authorize(request)
    service = registration.service
    authz.require("service", "write", service.name)
    if (existing := app.store.service(service.service_id)) is not None:
        authz.require("service", "write", existing.name)
    replace = request.has("replace-existing-checks") and request.param(
        "replace-existing-checks"
    ) in ("", "true")
    app.agent.add_service(registration, replace)
    return Response()


def deregister_service(app: App, request: Request, service_id: str) -> Response:
    """PUT /v1/agent/service/deregister/:id"""
    _vet_service(app, app.authorize(request), service_id)
    app.agent.remove_service(service_id)
    return Response()


def maintenance(app: App, request: Request, service_id: str) -> Response:
    """PUT /v1/agent/service/maintenance/:id?enable=&reason="""
    if not service_id:
        raise bad_request("Missing service ID")
    if not request.has("enable"):
        raise bad_request("Missing value for enable")
    enable = parse_go_bool(request.param("enable"))
    if enable is None:
        raise bad_request(f'Invalid value for enable: "{request.param("enable")}"')
    _vet_service(app, app.authorize(request), service_id)
    app.agent.set_maintenance(service_id, enable, request.param("reason"))
    return Response()


def _vet_service(app: App, authz: Authorizer, service_id: str) -> None:
    service = app.store.service(service_id)
    if service is None or not service.local:
        raise not_found(
            f'Unknown service ID "{service_id}". '
            "Ensure that the service ID is passed, not the service name."
        )
    authz.require("service", "write", service.name)


def _go_seconds(seconds: float) -> str:
    return format_duration(round(seconds * 1e9))
