"""List endpoints say when ACLs shortened their answer (agent/http.go
``setResultsFilteredByACLs``): ``X-Consul-Results-Filtered-By-ACLs: true``, only to a request
that presented a token (``maskResultsFilteredByACLs``), never "false".

A token with service:read but no node:read is the case that matters to the gateway: every
instance and check sits on a node, so every health answer comes back empty, with status 200.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .acl_helpers import AclAdmin
from .conftest import AclTarget
from .helpers import Api

pytestmark = pytest.mark.contract

FILTERED = "X-Consul-Results-Filtered-By-ACLs"
NODE_READ = 'node_prefix "" { policy = "read" }'
SERVICE_READ = 'service_prefix "" { policy = "read" }'


@pytest.fixture
def node(manager: Api) -> str:
    """The ACL agent's node name."""
    return str(manager.get("/v1/agent/self").json()["Config"]["NodeName"])


@pytest.fixture
def secured(manager: Api, name: str) -> Iterator[str]:
    """``name`` registered with a TTL check, deregistered after the test."""
    body = {"Name": name, "Check": {"TTL": "30s"}}
    assert manager.put("/v1/agent/service/register", json=body).status_code == 200
    yield name
    manager.put(f"/v1/agent/service/deregister/{name}")


def list_paths(name: str, node: str) -> list[str]:
    """Every list endpoint that shows the service or its node."""
    return [
        "/v1/health/state/any",
        f"/v1/health/service/{name}",
        f"/v1/health/checks/{name}",
        f"/v1/health/node/{node}",
        "/v1/catalog/services",
        f"/v1/catalog/service/{name}",
        "/v1/catalog/nodes",
        f"/v1/catalog/node/{node}",
        "/v1/agent/services",
        "/v1/agent/checks",
        "/v1/agent/members",
    ]


def test_a_token_without_node_read_gets_empty_health_answers_marked_filtered(
    acl_target: AclTarget, acl_admin: AclAdmin, secured: str
) -> None:
    token = acl_admin.token(SERVICE_READ)
    with Api(acl_target.addr, token.secret_id) as api:
        for path in ("/v1/health/state/any", f"/v1/health/service/{secured}"):
            response = api.get(path)
            assert (response.status_code, response.json()) == (200, []), path
            assert response.headers.get(FILTERED) == "true", path
        listing = api.get("/v1/catalog/services")  # service:read is all this one needs
        assert secured in listing.json()
        assert FILTERED not in listing.headers


def test_a_token_that_may_read_everything_gets_no_filtered_header(
    acl_target: AclTarget, acl_admin: AclAdmin, secured: str, node: str
) -> None:
    token = acl_admin.token(NODE_READ, SERVICE_READ)
    with Api(acl_target.addr, token.secret_id) as api:
        for path in list_paths(secured, node):
            response = api.get(path)
            assert response.status_code == 200, path
            assert FILTERED not in response.headers, path


def test_a_token_that_may_read_nothing_gets_the_header_on_every_list(
    acl_target: AclTarget, acl_admin: AclAdmin, secured: str, node: str
) -> None:
    token = acl_admin.token('service "no-such-service" { policy = "read" }')
    with Api(acl_target.addr, token.secret_id) as api:
        for path in list_paths(secured, node):
            response = api.get(path)
            assert response.status_code == 200, path
            assert response.headers.get(FILTERED) == "true", path


def test_a_request_without_a_token_is_never_told_what_it_cannot_see(
    acl_target: AclTarget, secured: str, node: str
) -> None:
    with Api(acl_target.addr) as anonymous:
        for path in list_paths(secured, node):
            response = anonymous.get(path)
            assert response.status_code == 200, path
            assert FILTERED not in response.headers, path


def test_a_blocking_read_that_ends_with_its_wait_still_says_it_was_filtered(
    acl_target: AclTarget, acl_admin: AclAdmin, secured: str
) -> None:
    token = acl_admin.token(SERVICE_READ)
    with Api(acl_target.addr, token.secret_id) as api:
        first = api.get("/v1/health/state/any")
        assert first.headers.get(FILTERED) == "true"
        index = first.headers["X-Consul-Index"]
        again = api.get("/v1/health/state/any", index=index, wait="200ms")
        assert again.headers["X-Consul-Index"] == index
        assert again.headers.get(FILTERED) == "true"
