"""The routing page's data adds up every worker of a real two-worker gateway.

Each request goes over its own connection, so the kernel spreads them over both workers; the
admin requests too, so /_gateway/state is answered by either. Whichever answers, it must count
all N requests, and a killed worker's counts must leave the page with it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for

pytestmark = pytest.mark.integration
TOKEN = "routing-page-workers-token-5e1a"
REQUESTS = 40


@pytest.fixture(scope="module")
def gateway(
    start_gateway: Callable[..., Process],
    start_service: StartService,
    consul: ConsulDouble,
    tmp_path_factory: pytest.TempPathFactory,
) -> Process:
    start_service("echo")
    start_service("echo")
    wait_for(lambda: len(passing_ids(consul.addr, "echo")) == 2, 15, "two passing echoes")
    token_file = tmp_path_factory.mktemp("secrets") / "admin-token"
    token_file.write_text(TOKEN)
    gw = start_gateway(
        GATEWAY_ADMIN_TOKEN_FILE=str(token_file),
        WEB_CONCURRENCY="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path_factory.mktemp("metrics")),
    )
    wait_for(lambda: len(state(gw)["worker"]["answered"]) == 2, 15, "both workers sharing")
    return gw


def state(gw: Process, **params: str) -> dict[str, Any]:
    # A new connection each time (no session): any worker may answer.
    response = requests.get(
        gw.admin_url + "/_gateway/state", params=params, headers=gw.admin_auth, timeout=5
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def echo_total(body: dict[str, Any]) -> int:
    echo = next(s for s in body["services"] if s["service"] == "echo")
    total: int = sum(i["requests_last_minute"] for i in echo["instances"])
    return total


def test_state_counts_every_workers_requests_whichever_worker_answers(gateway: Process) -> None:
    for _ in range(REQUESTS):
        assert requests.get(f"{gateway.url}/echo/", timeout=5).status_code == 200
    # Another worker's snapshot is up to a second old: wait until each worker, answering,
    # has counted all of them; from then on no answer may differ (no more traffic comes).
    full: set[int] = set()

    def both_workers_count_all() -> bool:
        body = state(gateway)
        if echo_total(body) == REQUESTS:
            full.add(body["worker"]["pid"])
        return len(full) == 2

    wait_for(both_workers_count_all, 15, f"both workers counting {REQUESTS} requests", 0.02)
    seen = [state(gateway) for _ in range(12)]
    assert [echo_total(b) for b in seen] == [REQUESTS] * 12
    assert all(len(b["worker"]["answered"]) == 2 for b in seen)
    assert all(b["worker"]["not_answering"] == [] and b["worker"]["missing"] == 0 for b in seen)
    assert {b["worker"]["pid"] for b in seen} <= set(seen[0]["worker"]["answered"])
    assert all(b["retry_budget"]["requests"] >= REQUESTS for b in seen)
    for _ in range(6):  # /explain's candidates count every worker's traffic too
        explained = requests.get(
            gateway.admin_url + "/_gateway/explain",
            params={"path": "/echo/"},
            headers=gateway.admin_auth,
            timeout=5,
        ).json()
        assert sum(c["requests_last_minute"] for c in explained["candidates"]) == REQUESTS
        assert explained["worker"]["workers_counted"] == 2


def own_views(gw: Process) -> dict[int, int]:
    """Each worker's own count (``?worker=self``), asking until both have answered."""
    views: dict[int, int] = {}

    def both() -> dict[int, int] | None:
        own = state(gw, worker="self")
        assert own["worker"]["merged"] is False
        assert own["worker"]["answered"] == [own["worker"]["pid"]]
        views[own["worker"]["pid"]] = echo_total(own)
        return views if len(views) == 2 else None

    return wait_for(both, 10, "both workers' own views", interval=0.01)


def test_the_workers_own_views_add_up_to_the_merged_one(gateway: Process) -> None:
    views = own_views(gateway)
    assert sum(views.values()) == echo_total(state(gateway)) == REQUESTS


def test_a_bad_worker_parameter_is_refused_naming_it(gateway: Process) -> None:
    response = requests.get(
        gateway.admin_url + "/_gateway/state?worker=all", headers=gateway.admin_auth, timeout=5
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_parameter" and body["parameter"] == "worker"


def test_a_corrupt_snapshot_is_named_not_counted_and_never_an_error(gateway: Process) -> None:
    (folder,) = Path(gateway.env["PROMETHEUS_MULTIPROC_DIR"]).glob("gateway-metrics-*/workers")
    # Named after a live process (this test's), so only its content is wrong.
    corrupt = folder / f"{os.getpid()}.json"
    corrupt.write_text('{"pid": ')
    try:
        body = wait_for(
            lambda: (b := state(gateway))["worker"]["not_answering"] and b, 5, "the bad file named"
        )
        assert body["worker"]["not_answering"] == [
            {"pid": os.getpid(), "why": "unreadable snapshot"}
        ]
        assert len(body["worker"]["answered"]) == 2 and echo_total(body) == REQUESTS
    finally:
        corrupt.unlink()
    assert "ignoring the worker snapshot" in gateway.log()


def test_a_killed_workers_snapshot_is_dropped(gateway: Process) -> None:
    own = own_views(gateway)
    victim = max(own, key=own.__getitem__)  # the one that served more: the total must drop
    os.kill(victim, signal.SIGKILL)

    def replaced() -> dict[str, Any] | None:
        body = state(gateway)
        worker = body["worker"]
        pids = set(worker["answered"]) | {s["pid"] for s in worker["not_answering"]}
        return body if victim not in pids and len(worker["answered"]) == 2 else None

    body = wait_for(replaced, 20, "the killed worker gone and a new one sharing")
    assert body["worker"]["not_answering"] == []
    # Its requests left with it; the new worker has sent none.
    assert echo_total(body) == REQUESTS - own[victim]
