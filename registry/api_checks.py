"""Agent check endpoints: /v1/agent/checks, check register and deregister, TTL updates.

As in agent/agent_endpoint.go and agent/acl.go, a write about an unknown check answers 404
("Unknown check ID ...") before any permission check; a known one needs service:write on its
service, or node:write for a node check. Pass, warn, fail and update work on TTL checks only:
any other check answers 500 "CheckID ... does not have associated TTL".
An update's Output longer than 4 KiB is cut twice, as Consul cuts it: by the update endpoint
(``AgentCheckUpdate``), then again, with its note of what was kept, by the TTL check.
"""

from __future__ import annotations

from . import decode, filter_fields, render
from .acl import Authorizer
from .app import App
from .errors import bad_request, not_found
from .model import CRITICAL, PASSING, STATUSES, WARNING
from .reads import AclDrops, entry_filter
from .runners import truncate_output
from .web import Request, Response


def agent_checks(app: App, request: Request, _: str) -> Response:
    """GET /v1/agent/checks: the agent's own checks (no node-level serfHealth)."""
    authz = app.authorize(request)
    keep = entry_filter(request, filter_fields.CHECK)
    drops = AclDrops(app, request)
    with app.store.lock:
        checks = {
            c.check_id: render.check(c, app.node.name, with_indexes=False)
            for c in app.store.checks()
            if c.local and drops.keep(_may(authz, app, c.service_name, "read"))
        }
    body = {key: value for key, value in checks.items() if keep(value)}
    return Response(body=body, headers=drops.headers())


def register_check(app: App, request: Request, _: str) -> Response:
    """PUT /v1/agent/check/register"""
    registration = decode.check_registration(request.body)
    authz = app.authorize(request)
    service_name = ""
    if registration.service_id:
        service = app.store.service(registration.service_id)
        if service is None or not service.local:
            raise not_found(f'ServiceID "{registration.service_id}" does not exist')
        service_name = service.name
    _require_write(authz, app, service_name)
    if (existing := app.store.check(registration.check_id or registration.name)) is not None:
        _require_write(authz, app, existing.service_name)
    app.agent.add_check(registration)
    return Response()


def deregister_check(app: App, request: Request, check_id: str) -> Response:
    """PUT /v1/agent/check/deregister/:id"""
    _vet_check(app, app.authorize(request), check_id)
    app.agent.remove_check(check_id)
    return Response()


def ttl_pass(app: App, request: Request, check_id: str) -> Response:
    """PUT /v1/agent/check/pass/:id?note="""
    return _ttl(app, request, check_id, PASSING, request.param("note"))


def ttl_warn(app: App, request: Request, check_id: str) -> Response:
    """PUT /v1/agent/check/warn/:id?note="""
    return _ttl(app, request, check_id, WARNING, request.param("note"))


def ttl_fail(app: App, request: Request, check_id: str) -> Response:
    """PUT /v1/agent/check/fail/:id?note="""
    return _ttl(app, request, check_id, CRITICAL, request.param("note"))


def ttl_update(app: App, request: Request, check_id: str) -> Response:
    """PUT /v1/agent/check/update/:id with {"Status": ..., "Output": ...}"""
    raw = decode.decode_body(request.body, "agent.checkUpdate")
    status, output = raw.get("status", ""), raw.get("output", "")
    if not isinstance(status, str) or status not in STATUSES:
        raise bad_request(f"Invalid check status: '{status}'")
    output = truncate_output(output) if isinstance(output, str) else ""
    return _ttl(app, request, check_id, status, output)


def _ttl(app: App, request: Request, check_id: str, status: str, output: str) -> Response:
    _vet_check(app, app.authorize(request), check_id)
    app.agent.update_ttl(check_id, status, output)
    return Response()


def _vet_check(app: App, authz: Authorizer, check_id: str) -> None:
    check = app.store.check(check_id)
    if check is None or not check.local:
        raise not_found(
            f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.'
        )
    _require_write(authz, app, check.service_name)


def _require_write(authz: Authorizer, app: App, service_name: str) -> None:
    if service_name:
        authz.require("service", "write", service_name)
    else:
        authz.require("node", "write", app.node.name)


def _may(authz: Authorizer, app: App, service_name: str, level: str) -> bool:
    if service_name:
        return authz.allowed("service", level, service_name)
    return authz.allowed("node", level, app.node.name)
