"""Registration shapes: what the agent, health, catalog and status endpoints answer.

Docs: api-docs/agent/service (register, list, get), api-docs/health, api-docs/catalog,
api-docs/status. Assertions are on fields, so extra fields a newer Consul adds do not break them.
"""

from __future__ import annotations

import consul
import pytest

from .conftest import ConsulTarget
from .helpers import Api

pytestmark = pytest.mark.contract


@pytest.fixture
def web(client: consul.Consul, name: str, registered: list[str]) -> str:
    """One instance of ``name`` registered through py-consul, with a TTL check; its ID."""
    service_id = f"{name}-1"
    registered.append(service_id)
    client.agent.service.register(
        name,
        service_id=service_id,
        address="10.1.2.3",
        port=8080,
        tags=["v1", "blue"],
        meta={"version": "1"},
        check=consul.Check.ttl("10m"),
    )
    return service_id


def test_agent_lists_the_registered_service_with_its_fields(api: Api, name: str, web: str) -> None:
    services = api.get("/v1/agent/services").json()
    assert (
        services[web]
        | {
            "ID": web,
            "Service": name,
            "Tags": ["v1", "blue"],
            "Meta": {"version": "1"},
            "Port": 8080,
            "Address": "10.1.2.3",
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
        }
        == services[web]
    )
    one = api.get(f"/v1/agent/service/{web}")
    assert one.status_code == 200
    assert one.json()["Service"] == name
    assert one.json()["ContentHash"] == one.headers["X-Consul-ContentHash"]


def test_health_entry_carries_node_service_and_checks_with_serf_health(
    api: Api, name: str, web: str
) -> None:
    entries = api.get(f"/v1/health/service/{name}").json()
    assert len(entries) == 1
    entry = entries[0]
    assert {"Node", "Address", "Datacenter"} <= entry["Node"].keys()
    assert entry["Service"]["ID"] == web
    assert entry["Service"]["Address"] == "10.1.2.3"
    assert entry["Service"]["Port"] == 8080
    checks = {c["CheckID"]: c for c in entry["Checks"]}
    serf = checks["serfHealth"]
    assert (serf["Status"], serf["ServiceID"]) == ("passing", "")
    assert serf["Output"] == "Agent alive and reachable"
    own = checks[f"service:{web}"]
    assert own["Name"] == f"Service '{name}' check"
    assert (own["Status"], own["Type"], own["ServiceName"]) == ("critical", "ttl", name)
    assert own["ServiceTags"] == ["v1", "blue"]


def test_catalog_endpoints_list_service_and_node(api: Api, name: str, web: str) -> None:
    services = api.get("/v1/catalog/services").json()
    assert sorted(services[name]) == ["blue", "v1"]
    assert "consul" in services
    [instance] = api.get(f"/v1/catalog/service/{name}").json()
    assert instance["ServiceID"] == web
    assert instance["ServiceName"] == name
    assert (instance["ServiceAddress"], instance["ServicePort"]) == ("10.1.2.3", 8080)
    assert instance["ServiceMeta"] == {"version": "1"}
    nodes = api.get("/v1/catalog/nodes").json()
    assert instance["Node"] in [n["Node"] for n in nodes]


def test_check_endpoints_list_the_service_check(api: Api, name: str, web: str) -> None:
    check_id = f"service:{web}"
    agent_checks = api.get("/v1/agent/checks").json()
    assert agent_checks[check_id]["ServiceID"] == web
    assert "serfHealth" not in agent_checks
    assert [c["CheckID"] for c in api.get(f"/v1/health/checks/{name}").json()] == [check_id]
    critical = [c["CheckID"] for c in api.get("/v1/health/state/critical").json()]
    assert check_id in critical
    passing = [c["CheckID"] for c in api.get("/v1/health/state/passing").json()]
    assert "serfHealth" in passing and check_id not in passing
    assert check_id in [c["CheckID"] for c in api.get("/v1/health/state/any").json()]


def test_status_and_self_describe_the_agent(api: Api, consul_target: ConsulTarget) -> None:
    leader = api.get("/v1/status/leader").json()
    assert leader.endswith(":8300")
    assert api.get("/v1/status/peers").json() == [leader]
    agent = api.get("/v1/agent/self").json()
    config = agent["Config"]
    assert config["Datacenter"] == "dc1"
    assert config["NodeName"]
    # Clients find the leader by comparing these two.
    assert agent["Stats"]["consul"]["leader_addr"] == leader
    if consul_target.is_double:
        assert "mesh-registry" in config["Version"]  # registry-only: it names itself


def test_several_checks_get_numbered_ids_and_single_check_registration_works(
    api: Api, client: consul.Consul, name: str, registered: list[str]
) -> None:
    registered.append(name)
    ttl = consul.Check.ttl("10m")
    client.agent.service.register(name, check=ttl, extra_checks=[ttl])
    client.agent.check.register(f"{name}-extra", check=ttl, service_id=name)
    checks = api.get(f"/v1/health/checks/{name}").json()
    assert sorted(c["CheckID"] for c in checks) == [
        f"{name}-extra",
        f"service:{name}:1",
        f"service:{name}:2",
    ]
    assert {c["ServiceName"] for c in checks} == {name}


def test_reregistration_keeps_or_replaces_missing_checks(
    api: Api, name: str, registered: list[str]
) -> None:
    registered.append(name)
    both = {
        "Name": name,
        "Checks": [{"CheckID": "a", "TTL": "10m"}, {"CheckID": "b", "TTL": "10m"}],
    }
    only_a = {"Name": name, "Checks": [{"CheckID": "a", "TTL": "10m"}]}
    assert api.put("/v1/agent/service/register", json=both).status_code == 200
    assert api.put("/v1/agent/service/register", json=only_a).status_code == 200
    assert sorted(api.get("/v1/agent/checks").json().keys() & {"a", "b"}) == ["a", "b"]
    response = api.put(
        "/v1/agent/service/register", json=only_a, **{"replace-existing-checks": "true"}
    )
    assert response.status_code == 200
    assert sorted(api.get("/v1/agent/checks").json().keys() & {"a", "b"}) == ["a"]


def test_reregistration_keeps_the_current_check_status(
    api: Api, client: consul.Consul, name: str, registered: list[str]
) -> None:
    registered.append(name)
    client.agent.service.register(name, check=consul.Check.ttl("10m"))
    client.agent.check.ttl_pass(f"service:{name}", "fine")
    client.agent.service.register(name, check=consul.Check.ttl("10m"))
    check = api.get("/v1/agent/checks").json()[f"service:{name}"]
    assert (check["Status"], check["Output"]) == ("passing", "fine")


def test_tag_filter_needs_every_tag_and_ignores_case(
    client: consul.Consul, name: str, registered: list[str]
) -> None:
    for number, tags in ((1, ["v1", "Blue"]), (2, ["v2", "blue"])):
        registered.append(f"{name}-{number}")
        client.agent.service.register(name, service_id=f"{name}-{number}", tags=tags)
    _, both = client.health.service(name, tag="BLUE")
    assert sorted(e["Service"]["ID"] for e in both) == [f"{name}-1", f"{name}-2"]
    _, one = client.health.service(name, tag=["blue", "v1"])
    assert [e["Service"]["ID"] for e in one] == [f"{name}-1"]
    _, catalog = client.catalog.service(name, tag="v2")
    assert [e["ServiceID"] for e in catalog] == [f"{name}-2"]


def test_passing_filter_drops_warning_and_critical_instances(
    api: Api, client: consul.Consul, name: str, registered: list[str]
) -> None:
    for status in ("passing", "warning", "critical"):
        service_id = f"{name}-{status}"
        registered.append(service_id)
        body = {"Name": name, "ID": service_id, "Check": {"TTL": "10m", "Status": status}}
        assert api.put("/v1/agent/service/register", json=body).status_code == 200
    _, everything = client.health.service(name)
    assert len(everything) == 3
    _, healthy = client.health.service(name, passing=True)
    assert [e["Service"]["ID"] for e in healthy] == [f"{name}-passing"]
    bare = api.get(f"/v1/health/service/{name}", passing="").json()
    assert [e["Service"]["ID"] for e in bare] == [f"{name}-passing"]


def test_node_check_appears_in_every_health_entry(
    api: Api, client: consul.Consul, name: str, registered: list[str]
) -> None:
    registered.append(name)
    client.agent.service.register(name)
    node_check = f"{name}-node"
    body = {"Name": node_check, "TTL": "10m", "Status": "passing"}
    assert api.put("/v1/agent/check/register", json=body).status_code == 200
    try:
        _, [entry] = client.health.service(name)
        assert node_check in [c["CheckID"] for c in entry["Checks"]]
    finally:
        api.put(f"/v1/agent/check/deregister/{node_check}")
