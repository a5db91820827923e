"""The core flow with real processes: registration, routing, balancing and errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import requests

from discovery.settings import instance_id
from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for, wait_for_status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(
    start_service: StartService, start_gateway: Callable[..., Process], consul: ConsulDouble
) -> dict[str, list[Process]]:
    catalogs = [start_service("catalog") for _ in range(3)]
    quotes = [start_service("quote")]
    echoes = [start_service("echo")]
    expected = {instance_id("catalog", p.port) for p in catalogs}
    wait_for(
        lambda: passing_ids(consul.addr, "catalog") == expected, 15, "3 passing catalog instances"
    )
    wait_for(lambda: len(passing_ids(consul.addr, "quote")) == 1, 15, "a passing quote instance")
    wait_for(lambda: len(passing_ids(consul.addr, "echo")) == 1, 15, "a passing echo instance")
    gateway = start_gateway()
    wait_for(
        lambda: (
            requests.get(f"{gateway.url}/quote/health", timeout=2).ok
            and requests.get(f"{gateway.url}/echo/health", timeout=2).ok
        ),
        10,
        "the gateway to route to quote and echo",
    )
    return {"catalog": catalogs, "quote": quotes, "echo": echoes, "gateway": [gateway]}


def test_every_instance_is_registered_with_a_passing_check(
    stack: dict[str, list[Process]], consul: ConsulDouble
) -> None:
    entries = requests.get(f"{consul.addr}/v1/health/service/catalog", timeout=5).json()
    assert {e["Service"]["ID"] for e in entries} == {
        instance_id("catalog", p.port) for p in stack["catalog"]
    }
    for entry in entries:
        http_checks = [c for c in entry["Checks"] if c["CheckID"] != "serfHealth"]
        assert len(http_checks) == 1
        assert http_checks[0]["Status"] == "passing"
        assert entry["Service"]["Port"] in {p.port for p in stack["catalog"]}


def test_requests_through_the_gateway_reach_every_instance(stack: dict[str, list[Process]]) -> None:
    gateway = stack["gateway"][0]
    counts: Counter[str] = Counter()
    with requests.Session() as session:
        for _ in range(300):
            response = session.get(f"{gateway.url}/catalog/items", timeout=5)
            assert response.status_code == 200, response.text
            body = response.json()
            assert response.headers["X-Instance-ID"] == body["instance"]
            counts[body["instance"]] += 1
    assert set(counts) == {instance_id("catalog", p.port) for p in stack["catalog"]}
    assert min(counts.values()) >= 60, counts  # each instance gets at least 20%


def test_a_new_gateway_routes_every_service_from_its_first_request(
    stack: dict[str, list[Process]], start_gateway: Callable[..., Process]
) -> None:
    # Each worker reads the whole catalog before it accepts connections; a fresh connection
    # per request lands on either worker, including one that has only just started.
    gateway = start_gateway(WEB_CONCURRENCY="2")
    codes = Counter(
        requests.get(
            f"{gateway.url}/catalog/items", headers={"Connection": "close"}, timeout=5
        ).status_code
        for _ in range(40)
    )
    assert codes == {200: 40}


def test_a_service_calls_another_through_discovery(stack: dict[str, list[Process]]) -> None:
    gateway = stack["gateway"][0]
    catalog_ids = {instance_id("catalog", p.port) for p in stack["catalog"]}
    seen = set()
    for _ in range(30):
        response = requests.get(
            f"{gateway.url}/quote/quote", params={"sku": "bread", "qty": "3"}, timeout=5
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["unit_price_cents"], body["total_cents"]) == (450, 1350)
        assert body["instance"] == instance_id("quote", stack["quote"][0].port)
        seen.add(body["catalog_instance"])
    assert seen <= catalog_ids and len(seen) >= 2


def test_quote_rejects_bad_input_with_json(stack: dict[str, list[Process]]) -> None:
    gateway = stack["gateway"][0]
    response = requests.get(
        f"{gateway.url}/quote/quote", params={"sku": "bread", "qty": "-1"}, timeout=5
    )
    assert response.status_code == 400
    assert "qty" in response.json()["detail"]
    response = requests.get(f"{gateway.url}/quote/quote", params={"sku": "unicorn"}, timeout=5)
    assert response.status_code == 404
    assert "unicorn" in response.json()["detail"]


def test_unknown_service_is_a_404_json_error(stack: dict[str, list[Process]]) -> None:
    response = requests.get(f"{stack['gateway'][0].url}/nosuchservice/x", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "unknown_service"
    assert response.headers["X-Request-ID"] == response.json()["request_id"]


def test_service_without_passing_instance_is_a_503_json_error(
    stack: dict[str, list[Process]], consul: ConsulDouble
) -> None:
    # A registered instance whose TTL check has never passed is critical from the start.
    registration = {
        "Name": "ledger",
        "ID": "ledger-1",
        "Address": "127.0.0.1",
        "Port": 1,
        "Check": {"TTL": "30s"},
    }
    requests.put(
        f"{consul.addr}/v1/agent/service/register", json=registration, timeout=5
    ).raise_for_status()
    gateway = stack["gateway"][0]
    response = wait_for_status(
        f"{gateway.url}/ledger/x", 503, 5, "the gateway to learn about ledger"
    )
    assert response.json()["error"] == "no_passing_instance"
    assert response.json()["service"] == "ledger"


def test_admin_routes_list_services_instances_and_health(stack: dict[str, list[Process]]) -> None:
    body = requests.get(f"{stack['gateway'][0].admin_url}/_gateway/routes", timeout=5).json()
    catalog = next(s for s in body["services"] if s["service"] == "catalog")
    assert catalog["prefix"] == "/catalog"
    assert catalog["passing"] == 3
    assert {i["status"] for i in catalog["instances"]} == {"passing"}
    assert body["discovery"]["fresh"] is True


def test_gateway_health_reports_fresh_consul_data(stack: dict[str, list[Process]]) -> None:
    response = requests.get(f"{stack['gateway'][0].admin_url}/_gateway/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["stale"] is False


def test_metrics_count_requests_by_service_and_code(stack: dict[str, list[Process]]) -> None:
    gateway = stack["gateway"][0]
    for _ in range(5):
        requests.get(f"{gateway.url}/catalog/items", timeout=5)
    requests.get(f"{gateway.url}/nosuchservice/x", timeout=5)

    def scraped() -> dict[str, float] | None:
        # Each worker hands its counts to Prometheus within a second: poll for them.
        text = requests.get(f"{gateway.admin_url}/_gateway/metrics", timeout=5).text
        found = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        wanted = {
            'gateway_requests_total{code="200",service="catalog"}': 5,
            'gateway_requests_total{code="404",service="-"}': 1,
            'gateway_response_start_seconds_count{service="catalog"}': 5,
        }
        return found if all(found.get(k, 0) >= n for k, n in wanted.items()) else None

    samples = wait_for(scraped, 10, "the requests in the metrics")
    assert samples['gateway_requests_total{code="200",service="catalog"}'] >= 5
    assert samples['gateway_requests_total{code="404",service="-"}'] >= 1
    assert samples['gateway_response_start_seconds_count{service="catalog"}'] >= 5
    assert samples["gateway_discovery_last_sync_timestamp_seconds"] > 0
