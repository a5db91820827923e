"""The routing page's data (``/_gateway/state``) and ``/_gateway/explain`` on a real gateway.

A gateway with an admin token routes to real echo instances, all registered in the bundled
registry; the last tests kill a catalog instance and watch the page's data report it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for

pytestmark = pytest.mark.integration
TOKEN = "routing-page-token-41c9"
PAGE_FILES = ["/_gateway/", "/_gateway/routing-page.js", "/_gateway/routing-page.css"]


@pytest.fixture(scope="module")
def echoes(start_service: StartService, consul: ConsulDouble) -> list[Process]:
    procs = [start_service("echo"), start_service("echo")]
    wait_for(lambda: len(passing_ids(consul.addr, "echo")) == 2, 15, "two passing echoes")
    return procs


@pytest.fixture(scope="module")
def gateway(
    start_gateway: Callable[..., Process],
    echoes: list[Process],
    tmp_path_factory: pytest.TempPathFactory,
) -> Process:
    token_file = tmp_path_factory.mktemp("secrets") / "admin-token"
    token_file.write_text(TOKEN + "\n")
    # One worker, so that every request below is counted at once where /_gateway/state reads
    # (another worker's share arrives within a second: see test_routing_page_workers.py).
    gw = start_gateway(GATEWAY_ADMIN_TOKEN_FILE=str(token_file), WEB_CONCURRENCY="1")
    wait_for(lambda: routed_instances(gw, "echo") == 2, 15, "both echoes routed")
    return gw


def admin_get(gw: Process, endpoint: str, **params: str) -> requests.Response:
    return requests.get(gw.admin_url + endpoint, params=params, headers=gw.admin_auth, timeout=5)


def state(gw: Process) -> dict[str, Any]:
    response = admin_get(gw, "/_gateway/state")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def service_of(body: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in body["services"] if s["service"] == name)
    return found


def routed_instances(gw: Process, name: str) -> int:
    return sum(1 for i in service_of(state(gw), name)["instances"] if i["routed"])


@pytest.mark.parametrize("path", PAGE_FILES)
def test_the_page_is_served_without_the_token_and_loads_nothing_from_elsewhere(
    gateway: Process, path: str
) -> None:
    response = requests.get(gateway.admin_url + path, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] in (
        "text/html",
        "text/javascript",
        "text/css",
    )
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "http://" not in response.text and "https://" not in response.text


@pytest.mark.parametrize("path", ["/_gateway/state", "/_gateway/explain?path=/echo/"])
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", TOKEN])
def test_the_data_endpoints_answer_401_without_the_bearer_token(
    gateway: Process, path: str, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    response = requests.get(gateway.admin_url + path, headers=headers, timeout=5)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "unauthorized" and body["status"] == 401 and body["request_id"]


def test_state_shows_each_instance_passing_routed_and_its_share_of_traffic(
    gateway: Process, echoes: list[Process]
) -> None:
    before = service_of(state(gateway), "echo")["requests_last_minute"]
    for _ in range(20):
        assert requests.get(f"{gateway.url}/echo/", timeout=5).status_code == 200
    body = state(gateway)
    assert body["worker"]["workers"] == 1 and body["worker"]["pid"] != gateway.popen.pid  # type: ignore[union-attr]
    assert body["consul"]["last_sync_age_seconds"] is not None
    assert body["retry_budget"]["requests"] >= 20
    echo = service_of(body, "echo")
    assert echo["prefix"] == "/echo" and echo["requests_last_minute"] == before + 20
    rows = echo["instances"]
    assert [r["status"] for r in rows] == ["passing", "passing"]
    assert all(r["routed"] and r["excluded"] == [] and r["ejection"] is None for r in rows)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=0.01)
    assert all(len(r["requests_per_second"]) == body["window_seconds"] == 60 for r in rows)
    assert {r["address"] for r in rows} == {f"127.0.0.1:{p.port}" for p in echoes}


def test_explain_names_the_route_the_candidates_and_the_pick(gateway: Process) -> None:
    response = admin_get(gateway, "/_gateway/explain", path="/echo/items?x=1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["route"]["service"] == "echo" and body["route"]["upstream_path"] == "/items"
    assert [r["matched"] for r in body["routes"] if r["service"] == "echo"] == [True]
    candidates = {c["instance"] for c in body["candidates"]}
    assert len(candidates) == 2
    pick = body["pick"]
    assert pick["instance"] in candidates
    assert pick["rule"].startswith("least_outstanding")
    assert {s["instance"] for s in pick["sampled"]} == candidates
    assert all(s["in_flight"] == 0 for s in pick["sampled"])


def test_explain_changes_no_counter_and_takes_no_retry_budget(gateway: Process) -> None:
    def counters() -> tuple[object, ...]:
        body = state(gateway)
        rows = service_of(body, "echo")["instances"]
        budget = body["retry_budget"]
        return (
            budget["granted_total"],
            budget["denied_total"],
            tuple(r["requests_last_minute"] for r in rows),
        )

    before = counters()
    for _ in range(30):
        assert admin_get(gateway, "/_gateway/explain", path="/echo/").status_code == 200
    assert counters() == before


def test_explain_of_a_path_no_route_matches(gateway: Process) -> None:
    body = admin_get(gateway, "/_gateway/explain", path="/nowhere/items").json()
    assert body["route"] is None
    assert body["answer"] == {"status": 404, "error": "unknown_service"}
    assert not any(r["matched"] for r in body["routes"])


def test_explain_of_a_service_admin_path_says_it_is_not_routed(gateway: Process) -> None:
    body = admin_get(gateway, "/_gateway/explain", path="/echo/admin/faults").json()
    assert body["answer"]["error"] == "not_routed" and "candidates" not in body


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?path=",
        "?path=catalog/items",
        "?path=/" + "a" * 3000,
        "?path=/echo/../catalog",
        "?path=/echo/%252e%252e/catalog",
        "?path=/echo/a%20b",
        "?path=/echo/&path=/catalog/",
    ],
)
def test_explain_answers_400_naming_the_parameter(gateway: Process, query: str) -> None:
    response = requests.get(
        f"{gateway.admin_url}/_gateway/explain{query}", headers=gateway.admin_auth, timeout=5
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_parameter" and body["parameter"] == "path"
    assert body["detail"].startswith("path: ") and body["status"] == 400 and body["request_id"]


def test_a_killed_instance_shows_critical_ejected_for_a_refused_connection(
    gateway: Process, start_service: StartService, consul: ConsulDouble
) -> None:
    victim, survivor = start_service("catalog"), start_service("catalog")
    wait_for(lambda: routed_instances(gateway, "catalog") == 2, 15, "both catalogs routed")
    victim.kill()

    def row(port: int) -> dict[str, Any]:
        rows = service_of(state(gateway), "catalog")["instances"]
        found: dict[str, Any] = next(r for r in rows if r["address"].endswith(f":{port}"))
        return found

    def ejected_for_refusal() -> dict[str, Any] | None:
        # Requests reach the dead instance until its refused connection ejects it.
        requests.get(f"{gateway.url}/catalog/items", timeout=5)
        ejection = row(victim.port)["ejection"]
        return ejection if ejection and ejection["active"] else None

    ejection = wait_for(ejected_for_refusal, 15, "the killed instance ejected")
    assert ejection["reason"] == "connect_refused"
    assert ejection["until_consul_reports_it_back"] is True
    dead = wait_for(
        lambda: (r := row(victim.port))["status"] == "critical" and r, 15, "critical in Consul"
    )
    assert dead["routed"] is False and "consul_critical" in dead["excluded"]
    assert row(survivor.port)["routed"] is True

    body = admin_get(gateway, "/_gateway/explain", path="/catalog/items").json()
    by_address = {c["address"]: c for c in body["candidates"]}
    assert by_address[f"127.0.0.1:{victim.port}"]["routed"] is False
    assert body["pick"]["instance"] == by_address[f"127.0.0.1:{survivor.port}"]["instance"]
