"""ACL mode with default deny (api-docs/acl; acl/errors.go; agent/acl.go).

A request without a token uses the anonymous token: writes and single-object reads get 403
"Permission denied: anonymous token lacks permission ...", list reads answer 200 with the
denied entries filtered out. An unknown token gets 403 "ACL not found".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import consul
import pytest

from .conftest import AclTarget
from .helpers import Api

pytestmark = pytest.mark.contract


@pytest.fixture
def anonymous(acl_target: AclTarget) -> Iterator[Api]:
    """Plain HTTP without a token."""
    with Api(acl_target.addr) as api:
        yield api


@pytest.fixture
def manager(acl_target: AclTarget) -> Iterator[Api]:
    """Plain HTTP with the management token."""
    with Api(acl_target.addr, acl_target.token) as api:
        yield api


@pytest.fixture
def secured(manager: Api, name: str) -> Iterator[str]:
    """``name`` registered with the management token, deregistered after the test."""
    assert manager.put("/v1/agent/service/register", json={"Name": name}).status_code == 200
    yield name
    manager.put(f"/v1/agent/service/deregister/{name}")


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
