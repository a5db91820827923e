"""The node's own endpoints: health/node, catalog/node, catalog/datacenters, agent/members and
node maintenance, plus tagged addresses and URL-encoded names.

Docs: api-docs/health#list-checks-for-node, api-docs/catalog (datacenters, node),
api-docs/agent#list-members, api-docs/agent#enable-maintenance-mode,
api-docs/agent/service#taggedaddresses. Each test holds on a real Consul dev agent too.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import consul
import pytest

from .helpers import Api

pytestmark = pytest.mark.contract


@pytest.fixture
def node(api: Api) -> str:
    """The agent's node name."""
    return str(api.get("/v1/agent/self").json()["Config"]["NodeName"])


@pytest.fixture
def web(api: Api, name: str, registered: list[str]) -> str:
    """One instance with a TTL check and explicit tagged addresses; its ID."""
    service_id = f"{name}-1"
    registered.append(service_id)
    body = {
        "Name": name,
        "ID": service_id,
        "Address": "10.1.2.3",
        "Port": 8080,
        "TaggedAddresses": {
            "lan": {"Address": "10.1.2.3", "Port": 8080},
            "wan": {"Address": "198.18.0.1", "Port": 80},
        },
        "Check": {"TTL": "10m", "Status": "passing"},
    }
    assert api.put("/v1/agent/service/register", json=body).status_code == 200
    return service_id


@pytest.fixture
def maintenance(api: Api) -> Iterator[None]:
    """Always leave node maintenance off after the test."""
    yield
    api.put("/v1/agent/maintenance", enable="false")


def test_health_node_lists_node_and_service_checks(
    api: Api, node: str, web: str, client: consul.Consul
) -> None:
    response = api.get(f"/v1/health/node/{node}")
    assert response.status_code == 200
    assert int(response.headers["X-Consul-Index"]) > 0
    checks = {c["CheckID"]: c for c in response.json()}
    assert checks["serfHealth"]["Status"] == "passing"
    assert checks[f"service:{web}"]["ServiceID"] == web
    assert {c["Node"] for c in checks.values()} == {node}
    _, through_client = client.health.node(node)
    assert f"service:{web}" in [c["CheckID"] for c in through_client]


def test_health_node_of_an_unknown_node_is_an_empty_list(api: Api) -> None:
    response = api.get("/v1/health/node/no-such-node")
    assert (response.status_code, response.json()) == (200, [])


def test_catalog_node_lists_the_node_and_its_services(api: Api, node: str, web: str) -> None:
    response = api.get(f"/v1/catalog/node/{node}")
    assert response.status_code == 200
    body = response.json()
    assert body["Node"]["Node"] == node
    assert body["Services"][web]["Port"] == 8080
    assert body["Services"][web]["TaggedAddresses"]["wan"] == {
        "Address": "198.18.0.1",
        "Port": 80,
    }
    assert "consul" in body["Services"]


def test_catalog_node_of_an_unknown_node_is_null(api: Api) -> None:
    response = api.get("/v1/catalog/node/no-such-node")
    assert response.status_code == 200
    assert response.json() is None


def test_catalog_datacenters_lists_the_agents_datacenter(api: Api) -> None:
    assert api.get("/v1/catalog/datacenters").json() == ["dc1"]


def test_agent_members_lists_the_node_alive(api: Api, node: str) -> None:
    members = api.get("/v1/agent/members").json()
    [member] = [m for m in members if m["Name"] == node]
    assert member["Status"] == 1
    assert member["Tags"]["dc"] == "dc1"


def test_tagged_addresses_given_at_registration_show_in_every_view(
    api: Api, name: str, web: str
) -> None:
    wan = {"Address": "198.18.0.1", "Port": 80}
    assert api.get("/v1/agent/services").json()[web]["TaggedAddresses"]["wan"] == wan
    assert api.get(f"/v1/agent/service/{web}").json()["TaggedAddresses"]["wan"] == wan
    [entry] = api.get(f"/v1/health/service/{name}").json()
    assert entry["Service"]["TaggedAddresses"]["wan"] == wan
    [instance] = api.get(f"/v1/catalog/service/{name}").json()
    assert instance["ServiceTaggedAddresses"]["wan"] == wan


def test_node_maintenance_fails_every_instance_until_disabled(
    api: Api, name: str, node: str, web: str, maintenance: None
) -> None:
    assert api.put("/v1/agent/maintenance", enable="true", reason="patching").status_code == 200
    checks = {c["CheckID"]: c for c in api.get(f"/v1/health/node/{node}").json()}
    maint = checks["_node_maintenance"]
    assert (maint["Status"], maint["Notes"], maint["ServiceID"]) == ("critical", "patching", "")
    assert "_node_maintenance" in api.get("/v1/agent/checks").json()
    assert api.get(f"/v1/health/service/{name}", passing="1").json() == []
    assert api.put("/v1/agent/maintenance", enable="false").status_code == 200
    checks = {c["CheckID"] for c in api.get(f"/v1/health/node/{node}").json()}
    assert "_node_maintenance" not in checks
    assert [e["Service"]["ID"] for e in api.get(f"/v1/health/service/{name}").json()] == [web]


def test_node_maintenance_without_a_reason_gets_consuls_default_notes(
    api: Api, node: str, maintenance: None
) -> None:
    assert api.put("/v1/agent/maintenance", enable="true").status_code == 200
    checks = {c["CheckID"]: c for c in api.get(f"/v1/health/node/{node}").json()}
    assert checks["_node_maintenance"]["Notes"].startswith(
        "Maintenance mode is enabled for this node"
    )


def test_bad_node_maintenance_requests_get_consuls_answer(api: Api) -> None:
    missing = api.put("/v1/agent/maintenance")
    assert (missing.status_code, missing.text) == (400, "Missing value for enable")
    invalid = api.put("/v1/agent/maintenance", enable="maybe")
    assert (invalid.status_code, invalid.text) == (400, 'Invalid value for enable: "maybe"')


@pytest.mark.parametrize("odd", ["#", "%", " ", "?", "é"])
def test_names_with_url_encoded_characters_are_found_by_every_endpoint(
    api: Api, client: consul.Consul, name: str, registered: list[str], odd: str
) -> None:
    service = f"{name}{odd}x"
    registered.append(quote(service, safe=""))
    assert api.put("/v1/agent/service/register", json={"Name": service}).status_code == 200
    encoded = quote(service, safe="")
    [entry] = api.get(f"/v1/health/service/{encoded}").json()
    assert entry["Service"]["Service"] == service
    [instance] = api.get(f"/v1/catalog/service/{encoded}").json()
    assert instance["ServiceID"] == service
    assert api.get(f"/v1/agent/service/{encoded}").json()["ID"] == service
    _, through_client = client.health.service(service)
    assert [e["Service"]["ID"] for e in through_client] == [service]
    assert api.put(f"/v1/agent/service/deregister/{encoded}").status_code == 200
    assert api.get(f"/v1/health/service/{encoded}").json() == []
