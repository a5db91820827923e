"""Retry rules, the retry budget, outlier ejection, the panic threshold and the snapshot file.

The upstream is the echo service registered as ``flaky``: one instance answers 503 to
everything (a fault knob), the other is healthy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from discovery.settings import instance_id
from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for, wait_for_status

pytestmark = pytest.mark.integration
# One worker, no ejection and a budget that never runs out: every retry rule shows plainly.
NO_EJECTION = {
    "GATEWAY_EJECT_AFTER": "1000",
    "WEB_CONCURRENCY": "1",
    "GATEWAY_RETRY_FLOOR": "100000",
}


@pytest.fixture(scope="module")
def flaky(start_service: StartService, consul: ConsulDouble) -> dict[str, str]:
    bad = start_service(
        "echo", SERVICE_NAME="flaky", FAULT_ERROR_RATE="1", FAULT_ERROR_STATUS="503"
    )
    good = start_service("echo", SERVICE_NAME="flaky")
    ids = {"bad": instance_id("flaky", bad.port), "good": instance_id("flaky", good.port)}
    wait_for(lambda: len(passing_ids(consul.addr, "flaky")) == 2, 15, "2 passing flaky instances")
    return ids


def gateway_for(start_gateway: Callable[..., Process], **env: str) -> Process:
    gateway = start_gateway(**env)
    wait_for(
        lambda: requests.get(f"{gateway.url}/flaky/health", timeout=5).ok, 10, "a route to flaky"
    )
    return gateway


def send(gateway: Process, method: str, n: int, **headers: str) -> list[requests.Response]:
    with requests.Session() as session:
        return [
            session.request(method, f"{gateway.url}/flaky/x", headers=headers, timeout=10)
            for _ in range(n)
        ]


def test_idempotent_requests_are_retried_on_another_instance(
    start_gateway: Callable[..., Process], flaky: dict[str, str]
) -> None:
    gateway = gateway_for(start_gateway, **NO_EJECTION)
    for method in ("GET", "PUT", "DELETE"):
        responses = send(gateway, method, 20)
        assert [r.status_code for r in responses] == [200] * 20, method
        assert {r.headers["X-Instance-ID"] for r in responses} == {flaky["good"]}


def test_post_is_not_retried_without_an_idempotency_key(
    start_gateway: Callable[..., Process], flaky: dict[str, str]
) -> None:
    gateway = gateway_for(start_gateway, **NO_EJECTION)
    statuses = [r.status_code for r in send(gateway, "POST", 30)]
    assert set(statuses) == {200, 503}  # the 503s reached the client: no retry
    keyed = send(gateway, "POST", 20, **{"Idempotency-Key": "order-17"})
    assert [r.status_code for r in keyed] == [200] * 20


def test_a_post_whose_idempotency_key_is_named_in_connection_is_not_retried(
    start_gateway: Callable[..., Process], flaky: dict[str, str]
) -> None:
    # Connection makes the key hop-by-hop: it is dropped, so the instance could not de-duplicate.
    gateway = gateway_for(start_gateway, **NO_EJECTION)
    headers = {"Idempotency-Key": "order-18", "Connection": "keep-alive, Idempotency-Key"}
    statuses = [r.status_code for r in send(gateway, "POST", 30, **headers)]
    assert set(statuses) == {200, 503}  # the 503s reached the client: no replay


def test_retry_budget_stops_retries_when_spent(
    start_gateway: Callable[..., Process], flaky: dict[str, str]
) -> None:
    gateway = gateway_for(
        start_gateway, **{**NO_EJECTION, "GATEWAY_RETRY_BUDGET": "0", "GATEWAY_RETRY_FLOOR": "2"}
    )
    responses = send(gateway, "GET", 40)
    failed = [r for r in responses if r.status_code != 200]
    assert failed, "with a spent budget some 503s must reach the client"
    assert all(r.status_code == 503 for r in failed)
    health = requests.get(f"{gateway.admin_url}/_gateway/health", timeout=5).json()
    assert health["retry_budget_denied"] >= len(failed) - 2


def test_failing_instance_is_ejected_and_gets_no_more_traffic(
    start_gateway: Callable[..., Process], flaky: dict[str, str]
) -> None:
    gateway = gateway_for(
        start_gateway, GATEWAY_EJECT_AFTER="2", GATEWAY_EJECT_BASE="60s", WEB_CONCURRENCY="1"
    )
    send(gateway, "GET", 20)  # retried, so all succeed, while the bad instance collects failures

    def bad_is_ejected() -> bool:
        body = requests.get(f"{gateway.admin_url}/_gateway/routes", timeout=5).json()
        flaky_svc = next(s for s in body["services"] if s["service"] == "flaky")
        return any(i["id"] == flaky["bad"] and i["ejected"] for i in flaky_svc["instances"])

    wait_for(bad_is_ejected, 5, "the failing instance to be ejected")
    posts = send(gateway, "POST", 20)  # not retried: only ejection keeps them off the bad one
    assert [r.status_code for r in posts] == [200] * 20


def test_panic_threshold_spreads_load_when_every_instance_is_ejected(
    start_gateway: Callable[..., Process], start_service: StartService, consul: ConsulDouble
) -> None:
    both_bad = [
        start_service("echo", SERVICE_NAME="broken", FAULT_ERROR_RATE="1", FAULT_ERROR_STATUS="503")
        for _ in range(2)
    ]
    wait_for(lambda: len(passing_ids(consul.addr, "broken")) == 2, 15, "2 passing broken instances")
    gateway = start_gateway(
        GATEWAY_EJECT_AFTER="1",
        GATEWAY_EJECT_MAX_FRACTION="1",
        GATEWAY_EJECT_BASE="60s",
        WEB_CONCURRENCY="1",
    )
    wait_for(
        lambda: requests.get(f"{gateway.url}/broken/health", timeout=5).ok, 10, "a route to broken"
    )
    with requests.Session() as session:
        responses = [session.post(f"{gateway.url}/broken/x", timeout=10) for _ in range(30)]
    # Every answer still comes from an instance (no gateway-made error), and from both of them.
    assert {r.status_code for r in responses} == {503}
    assert all(r.json().get("error") == "injected_fault" for r in responses)
    assert {r.headers["X-Instance-ID"] for r in responses[-10:]} == {
        instance_id("broken", p.port) for p in both_bad
    }


def test_gateway_starts_from_its_snapshot_file_while_consul_is_down(
    start_gateway: Callable[..., Process],
    flaky: dict[str, str],
    consul: ConsulDouble,
    tmp_path: Path,
) -> None:
    snapshot = tmp_path / "snapshot.json"
    first = start_gateway(GATEWAY_SNAPSHOT_FILE=str(snapshot))
    wait_for(lambda: snapshot.exists() and "flaky" in snapshot.read_text(), 10, "the snapshot file")
    first.stop()
    consul.stop()
    try:
        cold = start_gateway(GATEWAY_SNAPSHOT_FILE=str(snapshot), WEB_CONCURRENCY="1")
        responses = send(cold, "GET", 10)
        assert [r.status_code for r in responses] == [200] * 10
        health = requests.get(f"{cold.admin_url}/_gateway/health", timeout=5)
        assert health.status_code == 200
        assert health.json()["stale"] is True
        assert health.json()["discovery"]["from_snapshot_file"] is True
    finally:
        consul.start()


def test_gateway_without_consul_or_snapshot_answers_503_not_synced(
    start_gateway: Callable[..., Process], consul: ConsulDouble
) -> None:
    consul.stop()
    try:
        gateway = start_gateway(WEB_CONCURRENCY="1", GATEWAY_STARTUP_WAIT="1s")
        response = requests.get(f"{gateway.url}/flaky/x", timeout=5)
        assert response.status_code == 503
        assert response.json()["error"] == "not_synced"
        assert (
            requests.get(f"{gateway.admin_url}/_gateway/health", timeout=5).json()["stale"] is True
        )
    finally:
        consul.start()
    # Once Consul answers, the gateway tells unknown services from unread ones by itself.
    wait_for_status(f"{gateway.url}/nosuchservice/x", 404, 15, "a first read of the catalog")
