"""Consul load per process stays constant with 200 services, and changes still route fast.

Connections are counted from ``/proc/net/tcp``: ESTABLISHED sockets to the double's port,
owned by the processes under test (for the watcher in this process, only while the test
itself has no request open). Propagation times are printed (run with ``-s`` to see them),
never asserted: each change must only arrive within a generous deadline. Through the gateway
a change counts as routed when six probes in a row, each on a new connection and so on
either worker, answer as it should.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path

import pytest
import requests

from discovery.model import Service
from discovery.settings import ConsulSettings
from discovery.watcher import CatalogWatcher
from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, wait_for

pytestmark = pytest.mark.integration

SERVICES = 200
FLIPS = 20  # services whose check goes critical then passing again: two changes each
NEW = 10  # services registered during the run
DEADLINE = 10.0  # for one change to arrive; generous, since it is not what is measured
PROBE_EVERY = 0.002  # between probes of the gateway: the resolution of its times
# Two blocking queries (catalog listing, all checks) and one connection for reads.
PER_PROCESS = 3


def consul_connections(port: int, pids: Iterable[int]) -> Counter[int]:
    """ESTABLISHED TCP connections to *port* on loopback, counted per owning process."""
    owner: dict[str, int] = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue  # the process exited
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[8:-1]] = pid
    counts: Counter[int] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if fields[3] == "01" and remote_port == port and fields[9] in owner:
                counts[owner[fields[9]]] += 1
    return counts


def process_tree(pid: int) -> list[int]:
    """*pid* and its children (a gunicorn master and its workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces; the parent's pid is 2 fields after its ")".
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            children.append(int(stat.parent.name))
    return [pid, *children]


def register(consul: ConsulDouble, name: str, port: int, check: bool = True) -> None:
    """Register one instance of *name* on loopback, with a passing TTL check if *check*."""
    body: dict[str, object] = {
        "ID": f"{name}-1" if check else f"{name}-nocheck",
        "Name": name,
        "Address": "127.0.0.1",
        "Port": port,
    }
    if check:
        body["Check"] = {"CheckID": f"ttl-{name}", "TTL": "10m", "Status": "passing"}
    requests.put(
        f"{consul.addr}/v1/agent/service/register", json=body, timeout=5
    ).raise_for_status()


def set_check(consul: ConsulDouble, name: str, passing: bool) -> None:
    verb = "pass" if passing else "fail"
    requests.put(f"{consul.addr}/v1/agent/check/{verb}/ttl-{name}", timeout=5).raise_for_status()


def report(what: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    print(
        f"\n{what}: {len(ms)} changes, p50 {statistics.median(ms):.1f} ms, "
        f"p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
    )


@pytest.fixture(scope="module")
def echo(start_service: StartService) -> Process:
    """One real upstream; every registered service points at it."""
    return start_service("echo")


@pytest.fixture(scope="module")
def services(consul: ConsulDouble, echo: Process) -> list[str]:
    names = [f"load-{n:03d}" for n in range(SERVICES)]
    for name in names:
        register(consul, name, echo.port)
    return names


class Recorder:
    """A watcher listener that remembers when each snapshot was published."""

    def __init__(self) -> None:
        self.snapshots: list[tuple[float, Mapping[str, Service]]] = []

    def __call__(self, services: Mapping[str, Service]) -> None:
        self.snapshots.append((time.monotonic(), services))

    def first(self, since: float, seen: Callable[[Mapping[str, Service]], bool]) -> float | None:
        return next((t for t, s in list(self.snapshots) if t >= since and seen(s)), None)


def passing(name: str, want: bool) -> Callable[[Mapping[str, Service]], bool]:
    return lambda services: name in services and bool(services[name].passing) is want


@pytest.fixture
def watcher(consul: ConsulDouble, services: list[str]) -> Iterator[tuple[CatalogWatcher, Recorder]]:
    recorder = Recorder()
    watcher = CatalogWatcher(ConsulSettings(port=consul.port), wait=10.0)
    watcher.add_listener(recorder)
    watcher.start()
    assert watcher.wait_ready(30), watcher.status()
    yield watcher, recorder
    watcher.stop()


def test_a_watcher_of_200_services_holds_three_connections_and_sees_every_change(
    consul: ConsulDouble,
    services: list[str],
    echo: Process,
    watcher: tuple[CatalogWatcher, Recorder],
) -> None:
    catalog, recorder = watcher
    assert set(services) <= set(catalog.services)
    peak = 0

    def arrived(seen: Callable[[Mapping[str, Service]], bool], since: float) -> float | None:
        nonlocal peak  # sampled while no request of the test itself is open
        peak = max(peak, consul_connections(consul.port, [os.getpid()])[os.getpid()])
        return recorder.first(since, seen)

    def change(write: Callable[[], None], seen: Callable[[Mapping[str, Service]], bool]) -> float:
        started = time.monotonic()
        write()
        return wait_for(lambda: arrived(seen, started), DEADLINE, "the change") - started

    times = []
    for name in services[:FLIPS]:
        times.append(change(partial(set_check, consul, name, False), passing(name, False)))
        times.append(change(partial(set_check, consul, name, True), passing(name, True)))
    for n in range(NEW):
        name = f"new-watcher-{n}"
        times.append(change(partial(register, consul, name, echo.port), passing(name, True)))
    report(f"watcher, {SERVICES} services: registry to snapshot", times)
    print(f"watcher, {SERVICES} services: at most {peak} connections to Consul")
    assert 0 < peak <= PER_PROCESS


def test_changes_without_checks_still_reach_the_watcher(
    consul: ConsulDouble, echo: Process, watcher: tuple[CatalogWatcher, Recorder]
) -> None:
    catalog, _ = watcher

    def ports() -> set[int]:
        return {i.port for i in catalog.services["load-150"].instances}

    # Each moves only the services index: no check tells which service changed.
    started = time.monotonic()
    register(consul, "load-150", echo.port + 1, check=False)
    wait_for(lambda: ports() == {echo.port, echo.port + 1}, DEADLINE, "the instance")
    register(consul, "load-150", echo.port + 2, check=False)  # a new port, nothing else
    wait_for(lambda: ports() == {echo.port, echo.port + 2}, DEADLINE, "the new port")
    requests.put(f"{consul.addr}/v1/agent/service/deregister/load-150-nocheck", timeout=5)
    wait_for(lambda: ports() == {echo.port}, DEADLINE, "the removal")
    elapsed = time.monotonic() - started
    print(f"\nthree changes without checks reached the watcher in {elapsed:.2f} s")


def reflected(gateway: Process, name: str, status: int, streak: int = 6) -> float | None:
    """When *streak* probes in a row on new connections (any worker) answered *status*."""
    first = None
    for _ in range(streak):
        probe_started = time.monotonic()
        answered = requests.get(f"{gateway.url}/{name}/probe", timeout=5).status_code
        if answered != status:
            return None
        first = first or probe_started
    return first


def test_a_gateway_of_200_services_holds_three_connections_per_worker_and_routes_changes(
    consul: ConsulDouble,
    services: list[str],
    echo: Process,
    start_gateway: Callable[..., Process],
) -> None:
    gateway = start_gateway(WEB_CONCURRENCY="2")
    assert gateway.popen is not None
    master = gateway.popen.pid
    for name in (services[0], services[-1]):
        wait_for(partial(reflected, gateway, name, 200), DEADLINE, f"{name} to route")
    peaks: Counter[int] = Counter()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            for pid, count in consul_connections(consul.port, process_tree(master)).items():
                peaks[pid] = max(peaks[pid], count)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        times = []
        for name in services[100 : 100 + FLIPS]:
            for ok, status in ((False, 503), (True, 200)):
                started = time.monotonic()
                set_check(consul, name, ok)
                probe = partial(reflected, gateway, name, status)
                first = wait_for(probe, DEADLINE, f"{name} to answer {status}", PROBE_EVERY)
                times.append(first - started)
        for n in range(NEW):
            name = f"new-gateway-{n}"
            started = time.monotonic()
            register(consul, name, echo.port)
            probe = partial(reflected, gateway, name, 200)
            times.append(wait_for(probe, DEADLINE, name, PROBE_EVERY) - started)
    finally:
        done.set()
        sampler.join(5)
    report(f"gateway (2 workers), {SERVICES} services: registry to routing", times)
    print(f"gateway: peak connections to Consul per process {dict(peaks)}")
    assert len([pid for pid in peaks if pid != master]) == 2, peaks  # both workers watch
    assert max(peaks.values()) <= PER_PROCESS, peaks
