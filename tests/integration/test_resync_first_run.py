"""After Consul lost its state, a re-registered instance whose first check failed is dropped
once that check must have run, even though Consul still shows it critical with Output "".

Consul's agent writes a same-status result (critical, then critical) only after
``check_update_interval`` (5 minutes by default), so Output stays "" in the catalog. The
registry does the same with ``--check-update-interval``. The resync grace here is ten minutes:
what ends the hold early is the watcher's reading of the check's Interval, Timeout and indexes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from discovery.settings import ConsulSettings
from discovery.watcher import CatalogWatcher
from registry.launcher import ConsulDouble, run_consul_double
from tests.contract.helpers import StatusServer
from tests.polling import wait_for

pytestmark = pytest.mark.integration

GRACE = 600.0
DEADLINE = 20.0  # the check's interval (1s) and timeout (1s) with room to spare


@pytest.fixture
def consul() -> Iterator[ConsulDouble]:
    with run_consul_double(None, "--check-update-interval", "5m") as double:
        yield double


@pytest.fixture
def targets() -> Iterator[dict[str, StatusServer]]:
    servers = {"broken": StatusServer(), "healthy": StatusServer()}
    yield servers
    for server in servers.values():
        server.close()


def register(consul: ConsulDouble, name: str, target: StatusServer) -> None:
    check = {"HTTP": target.url, "Interval": "1s", "Timeout": "1s"}
    body = {"ID": f"{name}-1", "Name": name, "Address": "127.0.0.1", "Port": 9000, "Check": check}
    response = requests.put(f"{consul.addr}/v1/agent/service/register", json=body, timeout=5)
    response.raise_for_status()


def passing(watcher: CatalogWatcher, name: str) -> bool:
    service = watcher.services.get(name)
    return service is not None and bool(service.passing)


def test_an_instance_whose_first_check_failed_is_not_held_for_the_whole_grace(
    consul: ConsulDouble, targets: dict[str, StatusServer]
) -> None:
    for name, target in targets.items():
        register(consul, name, target)
    register(consul, "gone", targets["healthy"])
    watcher = CatalogWatcher(ConsulSettings(port=consul.port), wait=5.0, resync_grace=GRACE)
    watcher.start()
    try:
        assert watcher.wait_ready(15), watcher.status()
        for name in (*targets, "gone"):
            wait_for(lambda n=name: passing(watcher, n), DEADLINE, f"{name} to pass")
        # Consul loses its state; "broken" comes back failing, "gone" does not come back.
        targets["broken"].status = 500
        consul.stop()
        consul.start()
        for name, target in targets.items():
            register(consul, name, target)
        wait_for(lambda: watcher.resync_until > 0, DEADLINE, "the resync hold to start")
        wait_for(lambda: not passing(watcher, "broken"), DEADLINE, "broken to stop routing")
        checks = watcher.services["broken"].instances[0].checks
        broken = next(c for c in checks if c.check_id == "service:broken-1")
        assert (broken.status, broken.output) == ("critical", "")  # Consul shows no failure yet
        assert passing(watcher, "healthy")
        assert passing(watcher, "gone")  # a missing instance is still held for the grace
    finally:
        watcher.stop()
