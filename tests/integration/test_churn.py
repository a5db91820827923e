"""Instances that leave, die and arrive while the gateway routes to them."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import requests

from discovery.settings import instance_id
from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, stop_all, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Process]) -> Process:
    return start_gateway()


def start_catalogs(start_service: StartService, consul: ConsulDouble, count: int) -> list[Process]:
    procs = [start_service("catalog") for _ in range(count)]
    wanted = {instance_id("catalog", p.port) for p in procs}
    wait_for(
        lambda: wanted <= passing_ids(consul.addr, "catalog"), 15, f"{count} passing instances"
    )
    return procs


def served(gateway: Process, n: int) -> Counter[str]:
    """Send *n* requests; every one must succeed. Count the instances that served them."""
    counts: Counter[str] = Counter()
    with requests.Session() as session:
        for _ in range(n):
            response = session.get(f"{gateway.url}/catalog/items", timeout=5)
            assert response.status_code == 200, response.text
            counts[response.headers["X-Instance-ID"]] += 1
    return counts


def routed_to(gateway: Process, ids: set[str]) -> Callable[[], bool]:
    def check() -> bool:
        body = requests.get(f"{gateway.admin_url}/_gateway/routes", timeout=5).json()
        catalog = next((s for s in body["services"] if s["service"] == "catalog"), None)
        return (
            catalog is not None
            and {i["id"] for i in catalog["instances"] if i["status"] == "passing"} == ids
        )

    return check


@pytest.fixture
def three(
    start_service: StartService, consul: ConsulDouble, gateway: Process
) -> Iterator[list[Process]]:
    """Three catalog replicas the gateway routes to; stopped after the test."""
    procs = start_catalogs(start_service, consul, 3)
    wait_for(routed_to(gateway, ids_of(procs)), 5, "the gateway to see 3 instances")
    yield procs
    stop_all(procs)


def ids_of(procs: list[Process]) -> set[str]:
    return {instance_id("catalog", p.port) for p in procs}


def test_sigterm_deregisters_and_the_instance_gets_no_more_traffic(
    three: list[Process], consul: ConsulDouble, gateway: Process
) -> None:
    victim, victim_id = three[0], instance_id("catalog", three[0].port)
    victim.signal(signal.SIGTERM)
    wait_for(lambda: victim_id not in passing_ids(consul.addr, "catalog"), 5, "deregistration")
    entries = requests.get(f"{consul.addr}/v1/catalog/service/catalog", timeout=5).json()
    assert victim_id not in {e["ServiceID"] for e in entries}  # gone, not just critical
    assert victim.wait_exit(20) == 0
    assert set(served(gateway, 90)) == ids_of(three[1:])


def test_sigkilled_instance_gets_no_traffic_once_its_check_is_critical(
    three: list[Process], consul: ConsulDouble, gateway: Process
) -> None:
    victim, victim_id = three[0], instance_id("catalog", three[0].port)
    victim.kill()  # SIGKILL to master and workers: no hook runs, only the check notices
    wait_for(lambda: victim_id not in passing_ids(consul.addr, "catalog"), 10, "a critical check")
    wait_for(routed_to(gateway, ids_of(three[1:])), 5, "the gateway to drop the instance")
    assert set(served(gateway, 90)) == ids_of(three[1:])


def test_new_instance_gets_traffic_within_2s_of_its_check_passing(
    start_service: StartService, consul: ConsulDouble, gateway: Process
) -> None:
    procs = start_catalogs(start_service, consul, 2)
    late = start_service("catalog", wait=False)
    late_id = instance_id("catalog", late.port)
    wait_for(
        lambda: late_id in passing_ids(consul.addr, "catalog"),
        15,
        "the late instance to pass",
        interval=0.02,
    )

    def late_served() -> bool:
        return (
            requests.get(f"{gateway.url}/catalog/items", timeout=5).headers["X-Instance-ID"]
            == late_id
        )

    wait_for(late_served, 2.0, "traffic to the new instance within 2s", interval=0.01)
    for proc in [*procs, late]:
        proc.stop()
