"""ACL mode with default deny: who may register what, and what each token reads.

Sources: api-docs/acl and acl/errors.go for the texts; acl/policy_authorizer.go (an exact rule
beats the longest prefix rule, ``deny`` stops the search) and acl/policy_merger.go (deny beats
write beats read across a token's policies) for decisions; agent/acl.go for what registering,
deregistering and check updates need; ``aclFilter`` in agent/consul/acl.go for list filtering.

A request without a token uses the anonymous token: writes and single-object reads get 403
"Permission denied: anonymous token lacks permission ...", list reads answer 200 with the
denied entries filtered out. An unknown token gets 403 "ACL not found".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import consul
import pytest

from .acl_helpers import AclAdmin, denied
from .conftest import AclTarget
from .helpers import Api

pytestmark = pytest.mark.contract

SERVICE_TOKEN = 'service "{name}" {{ policy = "write" }}\nnode_prefix "" {{ policy = "read" }}'
READ_ONLY = 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }'


@pytest.fixture
def anonymous(acl_target: AclTarget) -> Iterator[Api]:
    """Plain HTTP without a token."""
    with Api(acl_target.addr) as api:
        yield api


@pytest.fixture
def secured(manager: Api, name: str) -> Iterator[str]:
    """``name`` registered with the management token, deregistered after the test."""
    assert manager.put("/v1/agent/service/register", json={"Name": name}).status_code == 200
    yield name
    manager.put(f"/v1/agent/service/deregister/{name}")


@pytest.fixture
def as_token(acl_target: AclTarget) -> Iterator[Callable[[str], Api]]:
    """Plain HTTP clients for the ACL agent that send a given token; closed after the test."""
    made: list[Api] = []

    def make(secret: str) -> Api:
        made.append(Api(acl_target.addr, secret))
        return made[-1]

    yield make
    for api in made:
        api.session.close()


@pytest.fixture
def cleanup(manager: Api) -> Iterator[list[str]]:
    """Service IDs to deregister with the management token after the test."""
    ids: list[str] = []
    yield ids
    for service_id in ids:
        manager.put(f"/v1/agent/service/deregister/{service_id}")


def register(api: Api, name: str, service_id: str, cleanup: list[str]) -> int:
    """Register one instance with a TTL check; its status code. Cleaned up after the test."""
    cleanup.append(service_id)
    body = {"Name": name, "ID": service_id, "Check": {"TTL": "10m"}}
    return api.put("/v1/agent/service/register", json=body).status_code


def test_writes_without_a_token_are_denied(anonymous: Api, name: str) -> None:
    response = anonymous.put("/v1/agent/service/register", json={"Name": name})
    assert response.status_code == 403
    assert response.text.startswith(
        f"Permission denied: anonymous token lacks permission 'service:write' on \"{name}\""
    )


def test_an_unknown_token_is_rejected_for_reads_and_writes(
    acl_target: AclTarget, name: str
) -> None:
    with Api(acl_target.addr, "not-a-token") as stranger:
        write = stranger.put("/v1/agent/service/register", json={"Name": name})
        read = stranger.get("/v1/catalog/services")
    assert (write.status_code, write.text) == (403, "ACL not found")
    assert (read.status_code, read.text) == (403, "ACL not found")


def test_list_reads_without_a_token_are_filtered_empty(anonymous: Api, secured: str) -> None:
    assert secured not in anonymous.get("/v1/catalog/services").json()
    assert anonymous.get(f"/v1/health/service/{secured}").json() == []
    assert anonymous.get(f"/v1/catalog/service/{secured}").json() == []
    assert anonymous.get("/v1/agent/services").json() == {}
    assert anonymous.get("/v1/catalog/nodes").json() == []


def test_single_object_reads_without_a_token_are_denied(anonymous: Api, secured: str) -> None:
    assert anonymous.get(f"/v1/agent/service/{secured}").status_code == 403
    self_read = anonymous.get("/v1/agent/self")
    assert self_read.status_code == 403
    assert "lacks permission 'agent:read'" in self_read.text
    assert anonymous.get("/v1/status/leader").status_code == 200


def test_the_management_token_works_as_header_parameter_and_for_py_consul(
    acl_target: AclTarget,
    manager: Api,
    secured: str,
    make_client: Callable[..., consul.Consul],
) -> None:
    [entry] = manager.get(f"/v1/health/service/{secured}").json()
    assert entry["Service"]["Service"] == secured
    with Api(acl_target.addr) as anonymous_url:
        by_param = anonymous_url.get("/v1/catalog/services", token=acl_target.token)
    assert secured in by_param.json()
    with_token = make_client(acl_target.addr, acl_target.token)
    assert secured in with_token.agent.services()
    without = make_client(acl_target.addr)
    with pytest.raises(consul.ACLPermissionDenied):
        without.agent.service.register(f"{secured}-other")


def test_a_service_token_registers_its_own_name_and_no_other(
    acl_admin: AclAdmin,
    as_token: Callable[[str], Api],
    cleanup: list[str],
    name: str,
) -> None:
    token = acl_admin.token(SERVICE_TOKEN.format(name=name))
    own = as_token(token.secret_id)
    assert register(own, name, f"{name}-1", cleanup) == 200
    other = own.put("/v1/agent/service/register", json={"Name": f"{name}-other"})
    assert other.status_code == 403
    assert other.text == denied(token.accessor_id, "service:write", f"{name}-other")


def test_a_service_token_cannot_take_over_or_remove_another_services_instance(
    acl_admin: AclAdmin,
    as_token: Callable[[str], Api],
    manager: Api,
    cleanup: list[str],
    name: str,
) -> None:
    victim = f"{name}-victim"
    assert register(manager, victim, f"{victim}-1", cleanup) == 200
    token = acl_admin.token(SERVICE_TOKEN.format(name=name))
    attacker = as_token(token.secret_id)
    # Its own name under the victim's ID: the existing registration needs service:write too.
    takeover = attacker.put("/v1/agent/service/register", json={"Name": name, "ID": f"{victim}-1"})
    assert takeover.status_code == 403
    assert takeover.text == denied(token.accessor_id, "service:write", victim)
    removal = attacker.put(f"/v1/agent/service/deregister/{victim}-1")
    assert removal.status_code == 403
    ttl = attacker.put(f"/v1/agent/check/fail/service:{victim}-1")
    assert ttl.status_code == 403
    assert f"{victim}-1" in manager.get("/v1/agent/services").json()


def test_a_read_only_token_cannot_register_any_name(
    acl_admin: AclAdmin, as_token: Callable[[str], Api], name: str
) -> None:
    token = acl_admin.token(READ_ONLY)
    response = as_token(token.secret_id).put("/v1/agent/service/register", json={"Name": name})
    assert response.status_code == 403
    assert response.text == denied(token.accessor_id, "service:write", name)


def test_an_exact_rule_beats_prefix_rules_and_the_longest_prefix_wins(
    acl_admin: AclAdmin,
    as_token: Callable[[str], Api],
    cleanup: list[str],
    name: str,
) -> None:
    token = acl_admin.token(
        f'service_prefix "{name}-" {{ policy = "write" }}\n'
        f'service "{name}-locked" {{ policy = "deny" }}\n'
        f'service_prefix "{name}-ro" {{ policy = "read" }}\n'
        f'service_prefix "{name}-ro-rw" {{ policy = "write" }}'
    )
    api = as_token(token.secret_id)
    assert register(api, f"{name}-a", f"{name}-a-1", cleanup) == 200
    assert register(api, f"{name}-locked", f"{name}-locked-1", cleanup) == 403
    assert register(api, f"{name}-locked-not", f"{name}-locked-not-1", cleanup) == 200
    assert register(api, f"{name}-ro-x", f"{name}-ro-x-1", cleanup) == 403
    assert register(api, f"{name}-ro-rw-x", f"{name}-ro-rw-x-1", cleanup) == 200
    assert register(api, f"other-{name}", f"other-{name}-1", cleanup) == 403


def test_a_tokens_policies_merge_with_deny_over_write_over_read(
    acl_admin: AclAdmin,
    as_token: Callable[[str], Api],
    cleanup: list[str],
    name: str,
) -> None:
    read = f'service "{name}" {{ policy = "read" }}'
    write = f'service "{name}" {{ policy = "write" }}'
    deny = f'service "{name}" {{ policy = "deny" }}'
    # The weaker rule comes last each time: the order of the policies must not matter.
    upgraded = as_token(acl_admin.token(write, read).secret_id)
    assert register(upgraded, name, f"{name}-1", cleanup) == 200
    vetoed = as_token(acl_admin.token(deny, write).secret_id)
    assert register(vetoed, name, f"{name}-2", cleanup) == 403


def test_reads_show_only_what_service_and_node_rules_allow(
    acl_admin: AclAdmin,
    as_token: Callable[[str], Api],
    manager: Api,
    cleanup: list[str],
    name: str,
) -> None:
    seen, hidden = f"{name}-seen", f"{name}-hidden"
    for service in (seen, hidden):
        assert register(manager, service, f"{service}-1", cleanup) == 200
    read_seen = f'service "{seen}" {{ policy = "read" }}'
    with_nodes = as_token(
        acl_admin.token(read_seen, 'node_prefix "" { policy = "read" }').secret_id
    )
    services = with_nodes.get("/v1/catalog/services").json()
    assert seen in services and hidden not in services
    assert [e["Service"]["ID"] for e in with_nodes.get(f"/v1/health/service/{seen}").json()] == [
        f"{seen}-1"
    ]
    assert with_nodes.get(f"/v1/health/service/{hidden}").json() == []
    assert with_nodes.get(f"/v1/catalog/service/{hidden}").json() == []
    checks = {c["CheckID"]: c for c in with_nodes.get("/v1/health/state/any").json()}
    assert f"service:{seen}-1" in checks and f"service:{hidden}-1" not in checks
    assert any(not c["ServiceName"] for c in checks.values()), "node checks need node:read only"

    # service:read without node:read: the name is listed, its instances and checks are not.
    without_nodes = as_token(acl_admin.token(read_seen).secret_id)
    assert seen in without_nodes.get("/v1/catalog/services").json()
    assert without_nodes.get(f"/v1/health/service/{seen}").json() == []
    assert without_nodes.get("/v1/health/state/any").json() == []
    assert f"{seen}-1" in without_nodes.get("/v1/agent/services").json()
