"""Blocking queries (api-docs/features/blocking; agent/blockingquery, agent/http.go setIndex)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from registry import blocking

from .helpers import Api

pytestmark = pytest.mark.contract

PROMPT = 10.0
BLOCKING_READS = (
    "/v1/health/service/{name}",
    "/v1/health/checks/{name}",
    "/v1/health/state/any",
    "/v1/catalog/services",
    "/v1/catalog/service/{name}",
    "/v1/catalog/nodes",
)


def _register(api: Api, registered: list[str], name: str, service_id: str) -> None:
    registered.append(service_id)
    response = api.put("/v1/agent/service/register", json={"Name": name, "ID": service_id})
    assert response.status_code == 200


@pytest.mark.parametrize("path", BLOCKING_READS)
def test_blocking_reads_carry_query_meta_and_never_index_zero(
    api: Api, name: str, path: str
) -> None:
    response = api.get(path.format(name=name))
    assert response.status_code == 200
    assert int(response.headers["X-Consul-Index"]) >= 1
    assert response.headers["X-Consul-KnownLeader"] == "true"
    assert response.headers["X-Consul-LastContact"].isdigit()


def test_index_zero_and_a_stale_index_answer_at_once(
    api: Api, name: str, registered: list[str]
) -> None:
    _register(api, registered, name, name)
    current = api.index("/v1/catalog/services")
    for index in (0, current - 1):
        # A query that blocked for its 60 s wait would miss this deadline and fail.
        response = api.get("/v1/catalog/services", deadline=PROMPT, index=str(index), wait="60s")
        assert name in response.json()


def test_current_index_blocks_until_the_result_changes(
    api: Api, name: str, registered: list[str]
) -> None:
    _register(api, registered, name, f"{name}-1")
    current = api.index(f"/v1/health/service/{name}")
    answers: list[requests.Response] = []
    waiter = threading.Thread(
        target=lambda: answers.append(
            api.get(f"/v1/health/service/{name}", index=str(current), wait="30s")
        )
    )
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "a query with the current index must block"
    _register(api, registered, name, f"{name}-2")
    waiter.join(PROMPT)
    assert not waiter.is_alive(), "the blocking query did not return after a change"
    [answer] = answers
    assert int(answer.headers["X-Consul-Index"]) > current
    assert sorted(e["Service"]["ID"] for e in answer.json()) == [f"{name}-1", f"{name}-2"]


def test_blocking_query_returns_the_same_index_when_wait_runs_out(
    api: Api, name: str, registered: list[str]
) -> None:
    _register(api, registered, name, name)
    current = api.index(f"/v1/catalog/service/{name}")
    started = time.monotonic()
    path = f"/v1/catalog/service/{name}"
    response = api.get(path, deadline=1.5 + PROMPT, index=str(current), wait="1500ms")
    assert int(response.headers["X-Consul-Index"]) == current
    assert time.monotonic() - started >= 1.5, "answered before its wait ran out"


def test_index_only_goes_up(api: Api, name: str, registered: list[str]) -> None:
    seen = [api.index("/v1/catalog/services")]
    for number in range(3):
        _register(api, registered, name, f"{name}-{number}")
        seen.append(api.index("/v1/catalog/services"))
    api.put(f"/v1/agent/service/deregister/{name}-0")
    seen.append(api.index("/v1/catalog/services"))
    assert seen == sorted(set(seen)), f"indexes not strictly increasing: {seen}"
    service_index = api.index(f"/v1/health/service/{name}")
    for number in range(1, 3):
        api.put(f"/v1/agent/service/deregister/{name}-{number}")
    assert api.index(f"/v1/health/service/{name}") > service_index


def test_wait_is_capped_at_ten_minutes_with_up_to_a_sixteenth_of_jitter() -> None:
    """The double's wait policy, pinned to RPCQueryTimeout (agent/consul/rpc.go).

    Observing the 10-minute cap over HTTP would take 10 minutes, so this checks the function
    the double's handlers use; it runs the same against any target.
    """
    assert blocking.query_timeout(3600, jitter=lambda: 0.0) == 600
    assert blocking.query_timeout(3600, jitter=lambda: 1.0) == 600 + 600 / 16
    assert blocking.query_timeout(0, jitter=lambda: 0.0) == 300
    assert blocking.query_timeout(-5, jitter=lambda: 0.0) == 300
    assert blocking.query_timeout(16, jitter=lambda: 0.5) == 16.5
