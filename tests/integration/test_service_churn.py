"""Services that come and go leave nothing behind in the gateway's metrics.

One well-behaved upstream is registered under many service names, used once each through a
gateway of two workers, and deregistered; the scrape must then forget them, while the counts
of the services still listed (and of a worker that exits) stay.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from registry.launcher import ConsulDouble
from tests.integration.harness import Process, wait_for
from tests.integration.hostile_upstream import HostileUpstream, plain

pytestmark = pytest.mark.integration
CHURNED = [f"churn-{n:02d}" for n in range(20)]


@pytest.fixture(scope="module")
def upstream(consul: ConsulDouble) -> Iterator[HostileUpstream]:
    with HostileUpstream(plain) as server:
        server.register(consul.addr, "steady")
        yield server


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Process], upstream: HostileUpstream) -> Process:
    gw = start_gateway(WEB_CONCURRENCY="2")
    wait_for(lambda: requests.get(f"{gw.url}/steady/x", timeout=5).ok, 10, "a route to steady")
    return gw


def scraped(gateway: Process) -> dict[tuple[str, str], float]:
    """Requests by (service, code) in the gateway's scrape."""
    text = requests.get(f"{gateway.admin_url}/_gateway/metrics", timeout=5).text
    return {
        (s.labels["service"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gateway_requests_total"
    }


def services_in_scrape(gateway: Process) -> set[str]:
    text = requests.get(f"{gateway.admin_url}/_gateway/metrics", timeout=5).text
    return {
        s.labels["service"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "service" in s.labels
    }


def routed(gateway: Process) -> set[str]:
    body = requests.get(f"{gateway.admin_url}/_gateway/routes", timeout=5).json()
    return {s["service"] for s in body["services"] if s["passing"]}


def test_services_that_are_gone_leave_no_series_in_the_scrape(
    gateway: Process, upstream: HostileUpstream, consul: ConsulDouble
) -> None:
    for name in CHURNED:
        upstream.register(consul.addr, name, ident=f"{name}-1")
    wait_for(lambda: routed(gateway) >= set(CHURNED), 15, "routes to every churned service")
    with requests.Session() as session:
        for name in CHURNED:
            assert session.get(f"{gateway.url}/{name}/x", timeout=5).ok
            session.post(f"{gateway.url}/{name}/x", timeout=5)
    wait_for(lambda: services_in_scrape(gateway) >= set(CHURNED), 10, "the churned in the scrape")
    for name in CHURNED:
        requests.put(f"{consul.addr}/v1/agent/service/deregister/{name}-1", timeout=5)
    wait_for(lambda: not routed(gateway) & set(CHURNED), 15, "the churned services unrouted")
    wait_for(lambda: not services_in_scrape(gateway) & set(CHURNED), 10, "the churned series to go")
    assert "steady" in services_in_scrape(gateway)


def worker_pids(gateway: Process) -> set[int]:
    assert gateway.popen is not None
    found = subprocess.run(
        ["pgrep", "-P", str(gateway.popen.pid)], capture_output=True, text=True, check=False
    )
    return {int(pid) for pid in found.stdout.split()}


def test_the_counts_of_a_worker_that_exits_stay_in_the_scrape(gateway: Process) -> None:
    for _ in range(30):  # new connections: the kernel spreads them over both workers
        assert requests.get(f"{gateway.url}/steady/x", timeout=5).ok

    def counted() -> float | None:
        count = scraped(gateway).get(("steady", "200"), 0.0)
        return count if count >= 30 else None

    seen = wait_for(counted, 10, "30 requests counted")
    (victim, *_) = workers = worker_pids(gateway)
    assert len(workers) == 2
    os.kill(victim, signal.SIGKILL)  # no chance to write its last counts: a crash
    wait_for(lambda: len(worker_pids(gateway) - {victim}) == 2, 20, "a new worker")
    for _ in range(10):  # the count never drops: every scrape after the crash still has it
        assert scraped(gateway).get(("steady", "200"), 0) >= seen
    assert requests.get(f"{gateway.url}/steady/x", timeout=5).ok
    wait_for(lambda: scraped(gateway).get(("steady", "200"), 0) > seen, 10, "one more counted")
