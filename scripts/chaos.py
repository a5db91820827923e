"""``make chaos``: deploy-safety scenarios under load, ending in a scorecard.

Runs on loopback with real processes: the Consul test double, three catalog replicas and the
gateway. Scenarios: SIGKILL of a replica, a rolling restart, a Consul outage, and a slow
replica under round robin and under peak EWMA; plus how fast registry changes reach the
gateway. Every load is bounded in count and time. Ends with ``chaos: N failed requests of M``.

Environment: ``CHAOS_OUTAGE_SECONDS`` (30), ``CHAOS_SLOW_SECONDS`` (10), ``CHAOS_PROBES`` (40).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from discovery.settings import instance_id
from registry.launcher import ConsulDouble, free_port, run_consul_double
from tests.integration.harness import (
    SERVICE_CONF,
    Process,
    gateway_env,
    passing_ids,
    service_env,
    wait_for,
)
from tests.integration.scenarios import Score, consul_outage, failover, rolling_restart
from tests.load import Load

OUTAGE = float(os.environ.get("CHAOS_OUTAGE_SECONDS", "30"))
SLOW_SECONDS = float(os.environ.get("CHAOS_SLOW_SECONDS", "10"))
PROBES = int(os.environ.get("CHAOS_PROBES", "40"))


class Stack:
    """Processes of one chaos run; every one is stopped at the end."""

    def __init__(self, consul: ConsulDouble, logs: Path) -> None:
        self.consul, self.logs = consul, logs
        self.procs: list[Process] = []

    def service(
        self, name: str = "catalog", port: int | None = None, app: str = "catalog"
    ) -> Process:
        """Start an instance of *app* registered as *name*."""
        port = port or free_port()
        env = service_env(app, port, self.consul.addr, SERVICE_NAME=name, SERVICE_DRAIN_DELAY="1s")
        proc = Process(f"{name}-{port}", SERVICE_CONF, env, port, self.logs).start()
        self.procs.append(proc)
        proc.wait_http("/health")
        return proc

    def gateway(self, **extra: str) -> Process:
        port = free_port()
        proc = Process(
            f"gateway-{port}",
            "gateway/gunicorn.conf.py",
            gateway_env(port, self.consul.addr, **extra),
            port,
            self.logs,
        ).start()
        self.procs.append(proc)
        proc.wait_http("/_gateway/routes")
        return proc

    def replicas(self, n: int, name: str = "catalog") -> list[Process]:
        procs = [self.service(name) for _ in range(n)]
        ids = {instance_id(name, p.port) for p in procs}
        wait_for(
            lambda: ids <= passing_ids(self.consul.addr, name), 20, f"{n} passing {name} replicas"
        )
        return procs

    def retire(self, procs: list[Process]) -> None:
        for proc in procs:
            proc.stop()

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@contextmanager
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp, run_consul_double(None) as consul:
        s = Stack(consul, Path(tmp))
        try:
            yield s
        finally:
            s.close()


def slow_replica(st: Stack, balancer: str) -> Score:
    """One of three replicas answers 100 ms late; how much traffic does it get, at what p99?"""
    name = f"slow-{balancer.replace('_', '-')}"
    procs = st.replicas(3, name)
    requests.put(
        f"{procs[0].url}/admin/faults", json={"latency_ms": 100}, timeout=5
    ).raise_for_status()
    gateway = st.gateway(GATEWAY_BALANCER=balancer)
    wait_for(
        lambda: requests.get(f"{gateway.url}/{name}/health", timeout=5).ok, 10, f"a route to {name}"
    )
    with Load(f"{gateway.url}/{name}/items", threads=8, max_seconds=SLOW_SECONDS) as load:
        result = load.join()
    share = result.by_instance()[instance_id(name, procs[0].port)] / max(1, len(result.outcomes))
    st.retire(procs)
    return Score(
        f"slow replica, {balancer}", result, notes=[f"slow replica got {share:.0%} of requests"]
    )


def propagation(st: Stack, gateway: Process) -> dict[str, list[float]]:
    """Seconds from a registry change to the gateway routing by it, per kind of change."""
    backend = st.service("echo", app="echo")
    samples: dict[str, list[float]] = {
        "new service": [],
        "instance critical": [],
        "instance passing": [],
    }
    for n in range(PROBES):
        name = f"probe-{n}"
        reg = {
            "Name": name,
            "ID": f"{name}-1",
            "Address": "127.0.0.1",
            "Port": backend.port,
            "Check": {"TTL": "60s", "Status": "passing"},
        }
        url = f"{gateway.url}/{name}/health"
        started = time.monotonic()
        register = f"{st.consul.addr}/v1/agent/service/register"
        requests.put(register, json=reg, timeout=5).raise_for_status()
        samples["new service"].append(time_until(url, 200, started))
        check = f"{st.consul.addr}/v1/agent/check/%s/service:{name}-1"
        started = time.monotonic()
        requests.put(check % "fail", params={"note": "probe"}, timeout=5).raise_for_status()
        samples["instance critical"].append(time_until(url, 503, started))
        started = time.monotonic()
        requests.put(check % "pass", params={"note": "probe"}, timeout=5).raise_for_status()
        samples["instance passing"].append(time_until(url, 200, started))
        deregister = f"{st.consul.addr}/v1/agent/service/deregister/{name}-1"
        requests.put(deregister, timeout=5).raise_for_status()
    return samples


def time_until(url: str, status: int, started: float) -> float:
    """Poll *url* as fast as the gateway answers until it gives *status*; seconds since *started*."""
    wait_for(
        lambda: requests.get(url, timeout=5).status_code == status,
        10,
        f"{status} from {url}",
        interval=0.0,
    )
    return time.monotonic() - started


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def main() -> int:
    scores: list[Score] = []
    with stack() as st:
        gateway = st.gateway()
        replicas = st.replicas(3)
        scores.append(failover(gateway, replicas, settle=3.0))
        replicas[0] = st.service(port=replicas[0].port)
        wait_for(lambda: len(passing_ids(st.consul.addr, "catalog")) == 3, 20, "3 replicas again")
        scores.append(
            rolling_restart(gateway, replicas, lambda old: st.service(port=old.port), st.consul)
        )
        samples = propagation(st, gateway)
        scores.append(consul_outage(gateway, st.consul, OUTAGE, replicas=3))
        st.retire(replicas)
        scores.append(slow_replica(st, "round_robin"))
        scores.append(slow_replica(st, "peak_ewma"))

    print("\n| scenario | requests | failed | p99 | time to eject | time to route | notes |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for s in scores:
        print(
            f"| {s.scenario} | {s.requests} | {s.failed} | {ms(s.result.percentile(0.99))} | {ms(s.time_to_eject)} | {ms(s.time_to_route)} | {'; '.join(s.notes)} |"
        )
    print("\npropagation: registry change -> the gateway routes by it")
    every = [v for values in samples.values() for v in values]
    for kind, values in [*samples.items(), ("all", every)]:
        q = statistics.quantiles(values, n=100, method="inclusive")
        print(
            f"  {kind}: {len(values)} changes, p50 {ms(q[49])}, p99 {ms(q[98])}, max {ms(max(values))}"
        )
    total = sum(s.requests for s in scores)
    failed = sum(s.failed for s in scores)
    print(f"chaos: {failed} failed requests of {total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
