"""The node endpoints with ACLs on and default deny (agent/agent_endpoint.go ``AgentMembers`` and
``AgentNodeMaintenance``, and the catalog's ``aclFilter``): node maintenance needs node:write
after its parameters are checked; the node's members, checks and services need node:read,
and a service's entries service:read too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .acl_helpers import AclAdmin
from .conftest import AclTarget
from .helpers import Api

pytestmark = pytest.mark.contract

NODE_READ = 'node_prefix "" { policy = "read" }'
SERVICE_READ = 'service_prefix "" { policy = "read" }'


@pytest.fixture
def anonymous(acl_target: AclTarget) -> Iterator[Api]:
    """Plain HTTP without a token."""
    with Api(acl_target.addr) as api:
        yield api


@pytest.fixture
def node(manager: Api) -> str:
    """The ACL agent's node name."""
    return str(manager.get("/v1/agent/self").json()["Config"]["NodeName"])


@pytest.fixture
def secured(manager: Api, name: str) -> Iterator[str]:
    """``name`` registered with the management token, deregistered after the test."""
    assert manager.put("/v1/agent/service/register", json={"Name": name}).status_code == 200
    yield name
    manager.put(f"/v1/agent/service/deregister/{name}")


def test_node_maintenance_checks_its_parameters_then_needs_node_write(
    anonymous: Api, node: str
) -> None:
    missing = anonymous.put("/v1/agent/maintenance")
    assert (missing.status_code, missing.text) == (400, "Missing value for enable")
    refused = anonymous.put("/v1/agent/maintenance", enable="true")
    assert refused.status_code == 403
    assert refused.text.startswith(
        f"Permission denied: anonymous token lacks permission 'node:write' on \"{node}\""
    )


def test_the_anonymous_token_sees_no_member_node_checks_or_node_services(
    anonymous: Api, node: str, secured: str
) -> None:
    assert anonymous.get("/v1/agent/members").json() == []
    assert anonymous.get(f"/v1/health/node/{node}").json() == []
    response = anonymous.get(f"/v1/catalog/node/{node}")
    assert (response.status_code, response.json()) == (200, None)


def test_node_read_shows_the_node_but_only_readable_services(
    acl_target: AclTarget, acl_admin: AclAdmin, node: str, secured: str
) -> None:
    node_only = acl_admin.token(NODE_READ)
    with Api(acl_target.addr, node_only.secret_id) as api:
        assert [m["Name"] for m in api.get("/v1/agent/members").json()] == [node]
        assert secured not in api.get(f"/v1/catalog/node/{node}").json()["Services"]
    both = acl_admin.token(NODE_READ, SERVICE_READ)
    with Api(acl_target.addr, both.secret_id) as api:
        assert secured in api.get(f"/v1/catalog/node/{node}").json()["Services"]
