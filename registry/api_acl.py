"""ACL endpoints: bootstrap, policies, tokens, and the agent's own token.

As agent/acl_endpoint.go: with ACLs off, every one answers 401 "ACL support disabled"; writes
need ``acl:write``, reads ``acl:read`` (management tokens only, in the registry); reading
``/v1/acl/token/self`` needs no permission, only the secret, and an unknown one answers 404
"Supplied token does not exist" (Consul 1.15 and later). ``PUT /v1/agent/token/<kind>`` needs
``agent:write`` on the node (agent/agent_endpoint.go ``AgentToken``). Shapes of the JSON follow
``structs.ACLToken`` and ``structs.ACLPolicy``; ``Policies`` links carry ID and Name.
"""

from __future__ import annotations

from typing import Any

from . import decode
from .acl_state import AclState, Policy, Token, content_hash
from .app import App
from .errors import ApiError, bad_request, not_found
from .web import Request, Response

AGENT_TOKENS = (
    "default",
    "agent",
    "agent_recovery",
    "replication",
    "config_file_service_registration",
)
_LEGACY_AGENT_TOKENS = {
    "acl_token": "default",
    "acl_agent_token": "agent",
    "acl_agent_master_token": "agent_recovery",
    "agent_master": "agent_recovery",
    "acl_replication_token": "replication",
}
_TOKEN_FIELDS = {"accessorid", "secretid", "description", "policies", "local"}
_POLICY_FIELDS = {"id", "name", "description", "rules", "datacenters"}


def bootstrap(app: App, request: Request, _: str) -> Response:
    """PUT /v1/acl/bootstrap"""
    token = _state(app).bootstrap()
    return Response(body={"ID": token.secret_id, **_token_json(app, token)})


def policy_list(app: App, request: Request, _: str) -> Response:
    """GET /v1/acl/policies"""
    _require(app, request, "read")
    stubs = [_policy_json(p, with_rules=False) for p in _state(app).policies()]
    return Response(body=stubs)


def policy_create(app: App, request: Request, _: str) -> Response:
    """PUT /v1/acl/policy"""
    _require(app, request, "write")
    fields = _fields(request, "structs.ACLPolicy", "Policy", _POLICY_FIELDS)
    if fields.get("id"):
        raise bad_request("Cannot specify the ID when creating a new policy")
    return Response(body=_policy_json(_put_policy(app, "", fields)))


def policy_by_id(app: App, request: Request, policy_id: str) -> Response:
    """GET, PUT or DELETE /v1/acl/policy/:id"""
    if not policy_id and request.method != "PUT":
        raise bad_request("Missing policy ID")
    if request.method == "DELETE":
        _require(app, request, "write")
        _state(app).delete_policy(policy_id)
        return Response(body=True)
    if request.method == "PUT":
        _require(app, request, "write")
        fields = _fields(request, "structs.ACLPolicy", "Policy", _POLICY_FIELDS)
        if fields.get("id") and fields["id"] != policy_id:
            raise bad_request("Policy ID in URL and payload do not match")
        return Response(body=_policy_json(_put_policy(app, policy_id, fields)))
    _require(app, request, "read")
    return _policy_answer(_state(app).policy(policy_id=policy_id))


def policy_by_name(app: App, request: Request, name: str) -> Response:
    """GET /v1/acl/policy/name/:name"""
    if not name:
        raise bad_request("Missing policy Name")
    _require(app, request, "read")
    return _policy_answer(_state(app).policy(name=name))


def token_list(app: App, request: Request, _: str) -> Response:
    """GET /v1/acl/tokens"""
    _require(app, request, "read")
    return Response(body=[_token_json(app, t) for t in _state(app).tokens()])


def token_create(app: App, request: Request, _: str) -> Response:
    """PUT /v1/acl/token"""
    _require(app, request, "write")
    fields = _fields(request, "structs.ACLToken", "Token", _TOKEN_FIELDS)
    token = _state(app).create_token(
        _str(fields, "accessorid"),
        _str(fields, "secretid"),
        _str(fields, "description"),
        _links(fields),
    )
    return Response(body=_token_json(app, token))


def token_by_accessor(app: App, request: Request, accessor_id: str) -> Response:
    """GET, PUT or DELETE /v1/acl/token/:AccessorID"""
    if request.method == "DELETE":
        _require(app, request, "write")
        _state(app).delete_token(accessor_id)
        return Response(body=True)
    if request.method == "PUT":
        _require(app, request, "write")
        fields = _fields(request, "structs.ACLToken", "Token", _TOKEN_FIELDS)
        if _str(fields, "accessorid") not in ("", accessor_id):
            raise bad_request("Token Accessor ID in URL and payload do not match")
        token = _state(app).update_token(
            accessor_id, _str(fields, "secretid"), _str(fields, "description"), _links(fields)
        )
        return Response(body=_token_json(app, token))
    if not accessor_id:
        raise bad_request("Missing token AccessorID")
    _require(app, request, "read")
    found = _state(app).token(accessor_id)
    if found is None:
        raise not_found("Requested token does not exist: ACL not found")
    return Response(body=_token_json(app, found))


def token_self(app: App, request: Request, _: str) -> Response:
    """GET /v1/acl/token/self"""
    state = _state(app)
    token = state.token_by_secret(app.request_secret(request))
    if token is None:
        raise not_found("Supplied token does not exist")
    return Response(body=_token_json(app, token))


def agent_token(app: App, request: Request, kind: str) -> Response:
    """PUT /v1/agent/token/:kind, with {"Token": "..."}"""
    state = _state(app, disabled=ApiError(401, "ACL support disabled"))
    app.authorize(request).require("agent", "write", app.node.name)
    value = decode.decode_body(request.body, "api.AgentToken").get("token", "")
    kind = _LEGACY_AGENT_TOKENS.get(kind, kind)
    if kind not in AGENT_TOKENS:
        raise not_found(f'Token "{kind}" is unknown')
    state.agent_tokens[kind] = value if isinstance(value, str) else ""
    return Response()


def _state(app: App, disabled: ApiError | None = None) -> AclState:
    if app.acl is None:
        raise disabled or ApiError(401, "ACL support disabled")
    return app.acl


def _require(app: App, request: Request, level: str) -> None:
    _state(app)
    app.authorize(request).require("acl", level)


def _fields(request: Request, go_type: str, what: str, known: set[str]) -> dict[str, Any]:
    fields = decode.decode_body(request.body, go_type)
    for key, value in fields.items():
        if key not in known and value not in (None, "", [], {}, False, 0):
            raise bad_request(f"registry: {what} field {key!r} is not supported")
    return fields


def _str(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key) or ""
    if not isinstance(value, str):
        raise bad_request(f"Request decoding failed: {key} must be a string")
    return value


def _links(fields: dict[str, Any]) -> list[dict[str, str]]:
    links = fields.get("policies") or []
    if not isinstance(links, list) or not all(isinstance(link, dict) for link in links):
        raise bad_request("Request decoding failed: Policies must be a list of objects")
    return [{str(k).lower(): str(v) for k, v in link.items()} for link in links]


def _put_policy(app: App, policy_id: str, fields: dict[str, Any]) -> Policy:
    return _state(app).put_policy(
        policy_id, _str(fields, "name"), _str(fields, "description"), _str(fields, "rules")
    )


def _policy_answer(policy: Policy | None) -> Response:
    if policy is None:
        raise not_found("Requested policy does not exist: ACL not found")
    return Response(body=_policy_json(policy))


def _policy_json(policy: Policy, with_rules: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ID": policy.policy_id,
        "Name": policy.name,
        "Description": policy.description,
    }
    if with_rules:
        body["Rules"] = policy.rules_text
    body["Hash"] = content_hash(policy.name, policy.description, policy.rules_text)
    body["CreateIndex"] = policy.create_index
    body["ModifyIndex"] = policy.modify_index
    return body


def _token_json(app: App, token: Token) -> dict[str, Any]:
    state = _state(app)
    links = []
    for policy_id in token.policy_ids:
        policy = state.policy(policy_id=policy_id)
        links.append({"ID": policy_id, "Name": policy.name if policy else ""})
    body: dict[str, Any] = {
        "AccessorID": token.accessor_id,
        "SecretID": token.secret_id,
        "Description": token.description,
    }
    if links:
        body["Policies"] = links
    body.update(
        {
            "Local": token.local,
            "CreateTime": token.create_time,
            "Hash": content_hash(token.description, token.policy_ids, token.local),
            "CreateIndex": token.create_index,
            "ModifyIndex": token.modify_index,
        }
    )
    return body
