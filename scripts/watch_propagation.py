"""Propagation of a change through one watcher, with and without the blocking-query pacing.

Starts the bundled registry on loopback, registers N services (one instance each, a TTL check
passed once), and follows them with one :class:`CatalogWatcher` in this process, as one gateway
worker does. Each measured change fails or passes one instance's check and is timed from the
write to the watcher's first snapshot that shows it. Two runs per setting:

- quiet: nothing else changes;
- churn: another thread flips other checks at ``--churn`` writes a second meanwhile, so every
  measured change lands among others, and the pacing has bursts to space out.

It prints p50/p99 per run, and how many ``/v1/health/state/any`` answers the watcher read a
second during the churn (each one the whole checks table). A tool that prints numbers, not a
test. README "Watch pacing" quotes its output.

    PYTHONPATH=. .venv/bin/python scripts/watch_propagation.py --services 200 1000
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests

from discovery import consul_client
from discovery.model import Service
from discovery.settings import ConsulSettings
from discovery.watcher import CatalogWatcher
from registry.launcher import run_registry

CHANGES = 60
DEADLINE = 10.0


class Recorder:
    """Remembers when each snapshot was published."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.latest: tuple[float, Mapping[str, Service]] = (0.0, {})

    def __call__(self, services: Mapping[str, Service]) -> None:
        with self.cond:
            self.latest = (time.monotonic(), services)
            self.cond.notify_all()

    def wait(self, name: str, passing: bool) -> float:
        deadline = time.monotonic() + DEADLINE
        with self.cond:
            while True:
                at, services = self.latest
                service = services.get(name)
                if service is not None and bool(service.passing) is passing:
                    return at
                if not self.cond.wait(deadline - time.monotonic()):
                    raise TimeoutError(name)


STATE_ANY_READS = 0


def count_state_any(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    global STATE_ANY_READS
    if "/v1/health/state/any" in response.url:
        STATE_ANY_READS += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.0, 0.05])
    parser.add_argument("--churn", type=float, default=20.0, help="background writes a second")
    args = parser.parse_args()
    original = consul_client.Client.__init__

    def counting_init(self: consul_client.Client, *a: Any, **k: Any) -> None:
        original(self, *a, **k)
        self.http.session.hooks["response"].append(count_state_any)

    consul_client.Client.__init__ = counting_init  # type: ignore[method-assign]
    for services in args.services:
        for interval in args.intervals:
            run(services, interval, args.churn)


def run(services: int, interval: float, churn_rate: float) -> None:
    global STATE_ANY_READS
    with run_registry() as consul, requests.Session() as http:
        http.trust_env = False
        names = [f"svc-{n:04d}" for n in range(services)]
        for name in names:
            check = {"CheckID": f"ttl-{name}", "TTL": "10m", "Status": "passing"}
            body = {"ID": name, "Name": name, "Port": 9000, "Check": check}
            http.put(f"{consul.addr}/v1/agent/service/register", json=body).raise_for_status()
        recorder = Recorder()
        watcher = CatalogWatcher(ConsulSettings(port=consul.port), wait=30.0, min_interval=interval)
        watcher.add_listener(recorder)
        watcher.start()
        assert watcher.wait_ready(60), watcher.status()
        measured, background = names[: services // 2], names[services // 2 :]
        quiet = measure(http, consul.addr, recorder, measured[:CHANGES])
        stop = threading.Event()
        churn = threading.Thread(
            target=flip_forever, args=(consul.addr, background, churn_rate, stop), daemon=True
        )
        STATE_ANY_READS = 0
        started = time.monotonic()
        churn.start()
        busy = measure(http, consul.addr, recorder, measured[CHANGES : 2 * CHANGES])
        stop.set()
        churn.join(5)
        reads = STATE_ANY_READS / (time.monotonic() - started)
        watcher.stop()
    label = f"{services} services, min interval {interval * 1000:.0f} ms"
    print(f"{label}: quiet {summary(quiet)}")
    print(f"{label}: churn {churn_rate:.0f}/s {summary(busy)}, {reads:.1f} state/any reads/s")


def measure(http: requests.Session, addr: str, recorder: Recorder, names: list[str]) -> list[float]:
    times = []
    for name in names:
        for verb, passing in (("fail", False), ("pass", True)):
            time.sleep(random.uniform(0.02, 0.08))  # so changes land at every phase of a pause
            started = time.monotonic()
            http.put(f"{addr}/v1/agent/check/{verb}/ttl-{name}").raise_for_status()
            times.append(recorder.wait(name, passing) - started)
    return times


def flip_forever(addr: str, names: list[str], rate: float, stop: threading.Event) -> None:
    with requests.Session() as http:
        http.trust_env = False
        verbs = ("fail", "pass")
        n = 0
        while not stop.wait(1 / rate):
            name = names[(n // 2) % len(names)]
            http.put(f"{addr}/v1/agent/check/{verbs[n % 2]}/ttl-{name}")
            n += 1


def summary(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms ({len(ms)} changes)"


if __name__ == "__main__":
    main()
