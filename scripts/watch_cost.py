"""What one wake-up of the gateway's checks watch costs, for catalogs of 10, 100 and 1,000 services.

Every change anywhere in the datacenter wakes ``/v1/health/state/any`` in every gateway process,
which then reads the whole answer: one row per check. This builds that answer for N services of
10 instances (20 instances a node, one serfHealth check a node; rows as the bundled registry
renders Consul's HealthCheck), flips one instance's check, and measures the bytes and the CPU
time of what a worker's watch thread does with it: ``json.loads``, one ``CheckRow`` per row, and
the diff that names the service to read again. README "Scale on paper" quotes the output.

    PYTHONPATH=. .venv/bin/python scripts/watch_cost.py
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from discovery.catalog_diff import CatalogDiff
from discovery.fingerprints import CheckRow

INSTANCES_PER_SERVICE = 10
INSTANCES_PER_NODE = 20
RUNS = 5


def check_row(node: str, service: str, instance: int, index: int, status: str) -> dict[str, Any]:
    """One element of ``/v1/health/state/any`` for an instance's HTTP check."""
    address = f"10.244.{instance // 250}.{instance % 250 + 2}"
    service_id = f"{service}-{address.replace('.', '-')}-8000"
    return {
        "Node": node,
        "CheckID": f"service:{service_id}",
        "Name": f"Service '{service}' check",
        "Status": status,
        "Notes": "",
        "Output": f'HTTP GET http://{address}:8000/health: 200 OK Output: {{"status":"ok"}}\n',
        "ServiceID": service_id,
        "ServiceName": service,
        "ServiceTags": [],
        "Type": "http",
        "Interval": "2s",
        "Timeout": "1s",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": index,
        "ModifyIndex": index,
    }


def state_any(services: int, flipped: bool) -> list[dict[str, Any]]:
    """The whole answer; *flipped* makes instance 0 critical at a new ModifyIndex."""
    rows = []
    instances = services * INSTANCES_PER_SERVICE
    for i in range(instances):
        node = f"node-{i // INSTANCES_PER_NODE}"
        status = "critical" if flipped and i == 0 else "passing"
        rows.append(check_row(node, f"svc-{i // INSTANCES_PER_SERVICE}", i, 10 + i, status))
        if flipped and i == 0:
            rows[-1]["ModifyIndex"] = 10 + instances + 1
    for n in range(-(-instances // INSTANCES_PER_NODE)):
        rows.append(
            {
                **check_row(f"node-{n}", "", n, 5, "passing"),
                "CheckID": "serfHealth",
                "Name": "Serf Health Status",
                "Output": "Agent alive and reachable",
                "ServiceID": "",
                "Type": "",
                "Interval": "",
                "Timeout": "",
            }
        )
    return rows


def one_wake(services: int) -> tuple[int, float]:
    """(answer bytes, median CPU seconds of handling the answer that shows one flip)."""
    before = json.dumps(state_any(services, flipped=False)).encode()
    after = json.dumps(state_any(services, flipped=True)).encode()
    listing = {f"svc-{s}": [] for s in range(services)}
    times = []
    for _ in range(RUNS):
        diff = CatalogDiff()
        diff.on_listing(1, listing, time.monotonic())
        diff.on_checks(2, [CheckRow.from_json(r) for r in json.loads(before)])
        start = time.process_time()
        changes = diff.on_checks(3, [CheckRow.from_json(r) for r in json.loads(after)])
        times.append(time.process_time() - start)
        assert changes.dirty == {"svc-0"}, changes.dirty  # exactly the flipped service
    return len(after), statistics.median(times)


def main() -> None:
    """Print one row per catalog size."""
    print("services  instances  checks  answer KiB  CPU ms per wake-up")
    for services in (10, 100, 1000):
        size, cpu = one_wake(services)
        instances = services * INSTANCES_PER_SERVICE
        checks = instances + -(-instances // INSTANCES_PER_NODE)
        print(
            f"{services:>8}  {instances:>9}  {checks:>6}  {size / 1024:>10,.0f}  {cpu * 1000:>18.1f}"
        )


if __name__ == "__main__":
    main()
