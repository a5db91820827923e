"""The compose stack on a real Docker engine: routing, scaling, a crash and a graceful stop.

These tests change the stack they run against: they scale catalog to 3 replicas, kill one and
stop another (the next ``up --scale`` starts both again).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.e2e.stack import GATEWAY, Stack, instance_id
from tests.integration.harness import wait_for
from tests.load import Load

pytestmark = pytest.mark.e2e

Report = Callable[[str], None]
# The gateway sends a request whose connection failed to another instance, and retries an
# idempotent GET whose connection broke mid-request, while Consul's check or the instance's
# own deregistration takes it out of rotation. So losing one replica of three, by a crash or
# by a stop, should cost no request at all: any failure is a finding, not noise.
MAX_FAILED = 0


def steady_load() -> Load:
    """4 clients at 25 requests a second each. They wait longer than the gateway's own deadline
    (30s), so a failure is the gateway's answer, not an impatient client."""
    return Load(
        f"{GATEWAY}/catalog/items", timeout=35.0, rate=25.0, max_requests=6000, max_seconds=150.0
    )


def test_gateway_routes_to_every_service_through_the_published_port(stack: Stack) -> None:
    items = stack.http.get(f"{GATEWAY}/catalog/items", timeout=10)
    assert items.status_code == 200, items.text
    assert items.json()["items"]
    assert items.json()["instance"] == items.headers["X-Instance-ID"]
    assert items.headers["X-Instance-ID"].startswith("catalog-")

    quote = stack.http.get(
        f"{GATEWAY}/quote/quote", params={"sku": "apple", "qty": "2"}, timeout=10
    )
    assert quote.status_code == 200, quote.text
    assert quote.json()["qty"] == 2
    assert quote.json()["total_cents"] == 2 * quote.json()["unit_price_cents"]
    assert quote.json()["catalog_instance"].startswith("catalog-")

    echo = stack.http.get(f"{GATEWAY}/echo/anything", timeout=10)
    assert echo.status_code == 200, echo.text
    assert echo.json()["method"] == "GET"
    assert echo.headers["X-Instance-ID"].startswith("echo-")


def test_every_replica_gets_traffic_after_scaling_to_three(stack: Stack, report: Report) -> None:
    replicas = stack.scale("catalog", 3)
    wanted = {instance_id("catalog", c) for c in replicas}
    served: Counter[str] = Counter()
    for _ in range(300):
        response = stack.http.get(f"{GATEWAY}/catalog/items", timeout=10)
        assert response.status_code == 200, response.text
        served[response.headers["X-Instance-ID"]] += 1
        if wanted <= served.keys():
            break
    report(f"catalog scaled to 3, requests per instance: {dict(served)}")
    assert served.keys() == wanted


def test_killing_a_replica_under_load_fails_no_request(stack: Stack, report: Report) -> None:
    victim = stack.scale("catalog", 3)[0]
    victim_id = instance_id("catalog", victim)
    with steady_load() as load:
        wait_for(
            lambda: load.result.by_instance()[victim_id] > 0 and load.result.sent >= 100,
            60,
            f"steady load that reaches {victim_id}",
        )
        victim.kill()  # SIGKILL: no deregistration, no drain, connections cut
        wait_for(
            lambda: victim_id not in stack.gateway_passing("catalog"),
            60,
            f"Consul's check to take the killed {victim_id} out of the gateway's rotation",
        )
        load.wait_for_requests(load.result.sent + 200, timeout=60)
    victim.reload()
    report(f"killed {victim_id} under load: {load.result.summary()}")
    assert victim.status == "exited"
    assert len(load.result.failures) <= MAX_FAILED, load.result.describe_failures(20)


def test_stopping_a_replica_deregisters_it_and_fails_no_request(
    stack: Stack, report: Report
) -> None:
    victim = stack.scale("catalog", 3)[-1]
    victim_id = instance_id("catalog", victim)
    assert victim_id in stack.consul_registered("catalog")
    with steady_load() as load:
        load.wait_for_requests(100, timeout=60)
        # Like `docker compose stop`: SIGTERM, then SIGKILL only after the container's stop
        # timeout, which compose set from stop_grace_period.
        victim.stop()
        load.wait_for_requests(load.result.sent + 100, timeout=60)
    victim.reload()
    wait_for(
        lambda: victim_id not in stack.consul_registered("catalog"),
        30,
        f"{victim_id} to leave Consul's catalog",
    )
    wait_for(
        lambda: victim_id not in {i["id"] for i in stack.gateway_instances("catalog")},
        30,
        f"{victim_id} to leave the gateway's route table",
    )
    report(f"stopped {victim_id} under load: {load.result.summary()}")
    # 0, not 137: gunicorn drained and exited before Docker's SIGKILL deadline.
    assert victim.attrs["State"]["ExitCode"] == 0
    assert len(load.result.failures) <= MAX_FAILED, load.result.describe_failures(20)
