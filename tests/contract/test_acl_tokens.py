"""The ACL system's own endpoints: bootstrap, policies, tokens, and the agent's token.

Sources: api-docs/acl (bootstrap, policy, tokens) and api-docs/agent#update-acl-tokens; texts
from agent/acl_endpoint.go, agent/consul/acl_endpoint.go (``BootstrapTokens``),
agent/consul/auth/token_writer.go and Consul's own api/acl_test.go (``TestAPI_ACLBootstrap``):
before bootstrapping, a token that does not exist is told to bootstrap first, and an unknown
secret on ``/v1/acl/token/self`` answers 404 "Supplied token does not exist" (Consul 1.15+).
"""

from __future__ import annotations

import uuid

import pytest

from registry.launcher import ConsulDouble

from .acl_helpers import AclAdmin, denied
from .conftest import AclTarget
from .helpers import Api

pytestmark = pytest.mark.contract

GLOBAL_MANAGEMENT = {"ID": "00000000-0000-0000-0000-000000000001", "Name": "global-management"}
ANONYMOUS_HINT = "The anonymous token is used implicitly when a request does not specify a token."


def test_acl_endpoints_answer_401_while_acls_are_disabled(api: Api) -> None:
    response = api.put("/v1/acl/bootstrap")
    assert (response.status_code, response.text) == (401, "ACL support disabled")


def test_bootstrap_makes_one_management_token_then_refuses(fresh_acl_double: ConsulDouble) -> None:
    with Api(fresh_acl_double.addr) as anonymous:
        first = anonymous.put("/v1/acl/bootstrap")
        again = anonymous.put("/v1/acl/bootstrap")
    assert first.status_code == 200, first.text
    token = first.json()
    assert token["Policies"] == [GLOBAL_MANAGEMENT]
    assert token["ID"] == token["SecretID"] != token["AccessorID"]
    assert again.status_code == 403
    assert again.text.startswith(
        "Permission denied: ACL bootstrap no longer allowed (reset index: "
    )
    with Api(fresh_acl_double.addr, token["SecretID"]) as manager:
        assert manager.get("/v1/acl/token/self").json()["AccessorID"] == token["AccessorID"]
        assert manager.get("/v1/agent/self").status_code == 200


def test_before_bootstrap_a_token_is_told_to_bootstrap_and_anonymous_is_denied(
    fresh_acl_double: ConsulDouble,
) -> None:
    with Api(fresh_acl_double.addr, "root") as stranger:
        told = stranger.get("/v1/acl/tokens")
    with Api(fresh_acl_double.addr) as anonymous:
        refused = anonymous.get("/v1/acl/tokens")
    assert (told.status_code, told.text) == (
        403,
        "ACL system must be bootstrapped before making any requests that require "
        "authorization: ACL not found",
    )
    assert (refused.status_code, refused.text) == (
        403,
        f"Permission denied: anonymous token lacks permission 'acl:read'. {ANONYMOUS_HINT}",
    )


def test_bootstrap_is_refused_once_the_agent_has_a_management_token(
    acl_target: AclTarget,
) -> None:
    with Api(acl_target.addr) as anonymous:
        response = anonymous.put("/v1/acl/bootstrap")
    assert response.status_code == 403
    assert response.text.startswith("Permission denied: ACL bootstrap no longer allowed")


def test_a_policy_and_a_token_linked_by_name_round_trip(manager: Api, acl_admin: AclAdmin) -> None:
    rules = 'service "web" { policy = "write" }'
    name = acl_admin.policy(rules)
    [stub] = [p for p in manager.get("/v1/acl/policies").json() if p["Name"] == name]
    policy = manager.get(f"/v1/acl/policy/{stub['ID']}").json()
    assert (policy["Name"], policy["Rules"]) == (name, rules)
    assert manager.get(f"/v1/acl/policy/name/{name}").json()["ID"] == stub["ID"]

    body = {"Description": "round trip", "Policies": [{"Name": name}]}
    created = manager.put("/v1/acl/token", json=body)
    assert created.status_code == 200, created.text
    token = created.json()
    acl_admin.forget_token(token["AccessorID"])
    assert token["Policies"] == [{"ID": stub["ID"], "Name": name}]
    assert uuid.UUID(token["SecretID"]) and uuid.UUID(token["AccessorID"])
    with Api(manager.addr, token["SecretID"]) as holder:
        self_view = holder.get("/v1/acl/token/self").json()
    assert (self_view["AccessorID"], self_view["Description"]) == (
        token["AccessorID"],
        "round trip",
    )

    other = acl_admin.policy('node_prefix "" { policy = "read" }')
    update = {"Description": "updated", "Policies": [{"Name": other}]}
    updated = manager.put(f"/v1/acl/token/{token['AccessorID']}", json=update).json()
    assert [p["Name"] for p in updated["Policies"]] == [other]
    assert updated["SecretID"] == token["SecretID"]
    assert updated["ModifyIndex"] > token["ModifyIndex"]


def test_a_token_can_be_created_with_a_chosen_secret_once(
    manager: Api, acl_admin: AclAdmin
) -> None:
    secret = str(uuid.uuid4())
    token = acl_admin.token('node_prefix "" { policy = "read" }', secret_id=secret)
    assert token.secret_id == secret
    with Api(manager.addr, secret) as holder:
        assert holder.get("/v1/acl/token/self").json()["AccessorID"] == token.accessor_id
    duplicate = manager.put("/v1/acl/token", json={"SecretID": secret})
    assert duplicate.status_code != 200
    assert "Invalid Token: SecretID is already in use" in duplicate.text


def test_token_self_with_an_unknown_secret_is_404(acl_target: AclTarget) -> None:
    with Api(acl_target.addr, str(uuid.uuid4())) as stranger:
        response = stranger.get("/v1/acl/token/self")
    assert (response.status_code, response.text) == (404, "Supplied token does not exist")


def test_acl_endpoints_need_acl_permissions(acl_target: AclTarget, acl_admin: AclAdmin) -> None:
    with Api(acl_target.addr) as anonymous:
        write = anonymous.put("/v1/acl/policy", json={"Name": "nope", "Rules": ""})
    assert (write.status_code, write.text) == (
        403,
        f"Permission denied: anonymous token lacks permission 'acl:write'. {ANONYMOUS_HINT}",
    )
    token = acl_admin.token('service_prefix "" { policy = "write" }')
    with Api(acl_target.addr, token.secret_id) as service:
        read = service.get("/v1/acl/policies")
    assert (read.status_code, read.text) == (403, denied(token.accessor_id, "acl:read"))


def test_the_agent_token_is_set_by_management_and_refused_to_anonymous(
    acl_target: AclTarget, manager: Api, acl_admin: AclAdmin
) -> None:
    node = manager.get("/v1/agent/self").json()["Config"]["NodeName"]
    agent = acl_admin.token(
        f'node "{node}" {{ policy = "write" }}\nservice_prefix "" {{ policy = "read" }}'
    )
    body = {"Token": agent.secret_id}
    assert manager.put("/v1/agent/token/agent", json=body).status_code == 200
    with Api(acl_target.addr) as anonymous:
        refused = anonymous.put("/v1/agent/token/agent", json=body)
    assert refused.status_code == 403
    # agent:write on the node in current Consul (AgentToken); older versions asked acl:write.
    assert refused.text.startswith("Permission denied: anonymous token lacks permission")
    unknown = manager.put("/v1/agent/token/nope", json=body)
    assert (unknown.status_code, unknown.text) == (404, 'Token "nope" is unknown')
