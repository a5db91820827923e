"""Zero failed requests through failover, rolling restarts and a Consul outage.

Bounded versions of the ``make chaos`` scenarios: every one runs under steady load from four
clients and must not fail a single request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from discovery.settings import instance_id
from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, stop_all, wait_for
from tests.integration.scenarios import consul_outage, failover, rolling_restart

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Process]) -> Process:
    return start_gateway(GATEWAY_RESYNC_GRACE="10s")


@pytest.fixture
def replicas(
    start_service: StartService, consul: ConsulDouble, gateway: Process
) -> Iterator[list[Process]]:
    procs = [start_service("catalog") for _ in range(3)]
    ids = {instance_id("catalog", p.port) for p in procs}
    wait_for(lambda: passing_ids(consul.addr, "catalog") == ids, 15, "3 passing replicas")
    yield procs
    stop_all(procs)
    wait_for(lambda: not passing_ids(consul.addr, "catalog"), 15, "the replicas to deregister")


def test_sigkill_of_a_replica_under_load_fails_no_request(
    gateway: Process, replicas: list[Process]
) -> None:
    score = failover(gateway, replicas, settle=1.0)
    assert score.requests > 300
    assert score.failed == 0, score.result.describe_failures()
    victim = instance_id("catalog", replicas[0].port)
    survivors = {instance_id("catalog", p.port) for p in replicas[1:]}
    assert survivors <= set(score.result.by_instance())
    assert victim not in score.result.by_instance(since=score.result.outcomes[-1].started - 0.5)


def test_rolling_restart_under_load_fails_no_request(
    gateway: Process, replicas: list[Process], start_service: StartService, consul: ConsulDouble
) -> None:
    score = rolling_restart(
        gateway, replicas, lambda old: start_service("catalog", port=old.port), consul
    )
    assert score.failed == 0, score.result.describe_failures()
    assert score.requests > 300
    assert set(score.result.by_instance()) == {instance_id("catalog", p.port) for p in replicas}


def test_consul_outage_under_load_fails_no_request(
    gateway: Process, replicas: list[Process], consul: ConsulDouble
) -> None:
    score = consul_outage(gateway, consul, seconds=5, replicas=3)
    assert score.failed == 0, score.result.describe_failures()
    assert score.requests > 300
    assert any("stale=True" in note for note in score.notes)
