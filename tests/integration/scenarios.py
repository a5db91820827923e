"""Churn scenarios under steady load, shared by the integration tests and ``make chaos``.

Each returns a :class:`Score`: how many requests were sent and failed, the p99 latency, and
the two times that matter in a deploy: how long until a dead instance stopped getting traffic
(time to eject) and how long until a new one got traffic (time to route).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from discovery.settings import instance_id
from registry.launcher import ConsulDouble
from tests.integration.harness import Process, passing_ids, wait_for
from tests.load import Load, LoadResult


@dataclass
class Score:
    """One row of the chaos scorecard."""

    scenario: str
    result: LoadResult
    time_to_eject: float | None = None
    time_to_route: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.result.outcomes)

    @property
    def failed(self) -> int:
        return len(self.result.failures)


def warm_up(load: Load, count: int = 100) -> None:
    """Wait until the load has sent *count* requests."""
    wait_for(lambda: len(load.result.outcomes) >= count, 30, f"{count} requests of warm-up")


def first_served_after(result: LoadResult, ident: str, after: float) -> float | None:
    """When the first request served by *ident* after *after* started."""
    times = [o.started for o in result.outcomes if o.instance == ident and o.started >= after]
    return min(times) if times else None


def failover(gateway: Process, replicas: list[Process], settle: float = 2.0) -> Score:
    """SIGKILL one of the replicas under load."""
    victim = replicas[0]
    victim_id = instance_id("catalog", victim.port)
    with Load(f"{gateway.url}/catalog/items") as load:
        warm_up(load)
        killed_at = time.monotonic()
        victim.kill()
        wait_for(lambda: out_of_rotation(gateway, victim_id), 30, "the gateway to eject it", 0.01)
        eject = time.monotonic() - killed_at
        wait_for(
            lambda: len([o for o in load.result.outcomes if o.started > killed_at]) >= 200,
            30,
            "load after the kill",
        )
        time.sleep(settle)  # keep the load running while Consul notices: part of the scenario
    return Score("failover (SIGKILL 1 of 3)", load.stop(), time_to_eject=eject)


def out_of_rotation(gateway: Process, ident: str) -> bool:
    """Whether the gateway (the worker that answers) no longer routes to *ident*."""
    body = requests.get(f"{gateway.admin_url}/_gateway/routes", timeout=5).json()
    for service in body["services"]:
        for inst in service["instances"]:
            if inst["id"] == ident:
                return bool(inst["ejected"] or inst["status"] != "passing")
    return True


def rolling_restart(
    gateway: Process,
    replicas: list[Process],
    restart: Callable[[Process], Process],
    consul: ConsulDouble,
) -> Score:
    """Restart every replica in turn with SIGTERM, each replaced by a new process on its port."""
    route_times: list[float] = []
    with Load(f"{gateway.url}/catalog/items") as load:
        warm_up(load)
        for index, old in enumerate(list(replicas)):
            ident = instance_id("catalog", old.port)
            old.signal(signal.SIGTERM)
            assert old.wait_exit(30) == 0, old.log()
            new = restart(old)
            replicas[index] = new
            first = wait_until_routed(load, consul, ident)
            route_times.append(first)
    result = load.stop()
    return Score(
        f"rolling restart ({len(replicas)} replicas)", result, time_to_route=max(route_times)
    )


def wait_until_routed(load: Load, consul: ConsulDouble, ident: str) -> float:
    """Wait for *ident* to pass in Consul, then to serve; return the seconds in between."""
    wait_for(lambda: ident in passing_ids(consul.addr, "catalog"), 20, f"{ident} to pass")
    passing_at = time.monotonic()
    first = wait_for(
        lambda: first_served_after(load.result, ident, passing_at), 10, f"traffic to {ident}"
    )
    return max(0.0, first - passing_at)


def consul_outage(gateway: Process, consul: ConsulDouble, seconds: float, replicas: int) -> Score:
    """Stop Consul under load for *seconds*, then start it again with an empty state."""
    notes = []
    with Load(f"{gateway.url}/catalog/items") as load:
        warm_up(load)
        consul.stop()
        stopped_at = time.monotonic()
        stale = wait_for(
            lambda: gateway_health(gateway).get("stale"), 15, "the gateway to report stale data"
        )
        notes.append(f"health said stale={stale} during the outage")
        while time.monotonic() - stopped_at < seconds:
            time.sleep(0.5)  # the outage itself; the load keeps running meanwhile
        consul.start()
        restarted_at = time.monotonic()
        wait_for(
            lambda: len(passing_ids(consul.addr, "catalog")) == replicas,
            30,
            "services to register again",
        )
        wait_for(lambda: not gateway_health(gateway).get("stale"), 30, "the gateway to recover")
        notes.append(f"recovered {time.monotonic() - restarted_at:.1f}s after Consul came back")
    return Score(f"Consul outage ({seconds:.0f}s)", load.stop(), notes=notes)


def gateway_health(gateway: Process) -> dict[str, object]:
    body: dict[str, object] = requests.get(f"{gateway.admin_url}/_gateway/health", timeout=5).json()
    return body
