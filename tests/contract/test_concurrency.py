"""Fifty blocking queries at once, with registrations running beside them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from .helpers import Api

pytestmark = pytest.mark.contract

WATCHERS = 50
INSTANCES = 10


def test_fifty_blocking_queries_all_wake_on_concurrent_registrations(
    api: Api, consul_target_addr: str, name: str, registered: list[str]
) -> None:
    current = api.index(f"/v1/health/service/{name}")

    def watch(_: int) -> tuple[int, int]:
        with Api(consul_target_addr) as own:
            response = own.get(f"/v1/health/service/{name}", index=str(current), wait="30s")
            return response.status_code, int(response.headers["X-Consul-Index"])

    def register(number: int) -> int:
        with Api(consul_target_addr) as own:
            body = {"Name": name, "ID": f"{name}-{number}", "Check": {"TTL": "10m"}}
            return own.put("/v1/agent/service/register", json=body).status_code

    registered.extend(f"{name}-{number}" for number in range(INSTANCES))
    with ThreadPoolExecutor(max_workers=WATCHERS + INSTANCES) as pool:
        watchers = [pool.submit(watch, n) for n in range(WATCHERS)]
        writers = [pool.submit(register, n) for n in range(INSTANCES)]
        assert [w.result(timeout=60) for w in writers] == [200] * INSTANCES
        answers = [w.result(timeout=60) for w in watchers]
    assert all(status == 200 and index > current for status, index in answers)
    assert len(api.get(f"/v1/health/service/{name}").json()) == INSTANCES
