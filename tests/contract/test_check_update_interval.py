"""A check whose status does not change writes its new output late (``check_update_interval``).

Consul's agent (agent/local/state.go ``UpdateCheck``) keeps a same-status result's output in
its local state and writes it to the catalog only after ``check_update_interval / 2`` plus a
random stagger of up to one interval (5 minutes by default). A status change is written at
once. So on a real agent, an instance whose first check fails keeps the catalog's Output ""
and ModifyIndex == CreateIndex for minutes, while ``/v1/agent/checks`` shows the failure.

Against a real agent these tests use its own interval (``DebugConfig.CheckUpdateInterval``), so
the last one takes up to one and a half of them; the double is started with a short one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from registry.durations import DurationError, parse_duration
from registry.launcher import run_consul_double

from .conftest import DOUBLE_ARGS, ConsulTarget
from .helpers import Api, StatusServer, wait_for

pytestmark = pytest.mark.contract

DOUBLE_INTERVAL = "4s"  # the first test reads the catalog within its first half
CONSUL_DEFAULT = 300.0


@dataclass(frozen=True)
class Lagging:
    """An agent that holds same-status output back, and for how long at most."""

    api: Api
    interval: float


@pytest.fixture
def lagging(consul_target: ConsulTarget) -> Iterator[Lagging]:
    """The double with a short ``--check-update-interval``, or the external agent as it is."""
    if consul_target.is_double:
        args = (*DOUBLE_ARGS, "--check-update-interval", DOUBLE_INTERVAL)
        with run_consul_double(None, *args) as double, Api(double.addr) as api:
            yield Lagging(api, parse_duration(DOUBLE_INTERVAL))
        return
    with Api(consul_target.addr) as api:
        debug = api.get("/v1/agent/self").json().get("DebugConfig", {})
        yield Lagging(api, _seconds(debug.get("CheckUpdateInterval")))


def _seconds(value: object) -> float:
    try:
        return parse_duration(value) if isinstance(value, str) else CONSUL_DEFAULT
    except DurationError:
        return CONSUL_DEFAULT


def _register(api: Api, name: str, url: str) -> str:
    check = {"HTTP": url, "Interval": "1s", "Timeout": "2s"}
    response = api.put("/v1/agent/service/register", json={"Name": name, "Check": check})
    assert response.status_code == 200, response.text
    return f"service:{name}"


def _agent_check(api: Api, check_id: str) -> dict[str, Any]:
    return dict(api.get("/v1/agent/checks").json().get(check_id) or {})


def _catalog_check(api: Api, name: str, check_id: str) -> dict[str, Any]:
    checks = api.get(f"/v1/health/checks/{name}").json()
    return next(c for c in checks if c["CheckID"] == check_id)


def test_a_first_failing_run_shows_on_the_agent_but_not_yet_in_the_catalog(
    lagging: Lagging, name: str, check_target: StatusServer
) -> None:
    check_target.status = 500
    check_id = _register(lagging.api, name, check_target.url)
    try:
        ran = wait_for(
            lambda: _agent_check(lagging.api, check_id).get("Output"), 15, "the first run"
        )
        assert "500" in ran
        catalog = _catalog_check(lagging.api, name, check_id)
        assert (catalog["Status"], catalog["Output"]) == ("critical", "")
        assert catalog["ModifyIndex"] == catalog["CreateIndex"]
    finally:
        lagging.api.put(f"/v1/agent/service/deregister/{name}")


def test_a_status_change_is_written_to_the_catalog_at_once(
    lagging: Lagging, name: str, check_target: StatusServer
) -> None:
    check_id = _register(lagging.api, name, check_target.url)
    try:

        def passing() -> dict[str, Any] | None:
            check = _catalog_check(lagging.api, name, check_id)
            return check if check["Status"] == "passing" else None

        catalog = wait_for(passing, 15, "the passing status in the catalog")
        assert catalog["Output"].startswith(f"HTTP GET {check_target.url}: 200 OK")
        assert catalog["ModifyIndex"] > catalog["CreateIndex"]
    finally:
        lagging.api.put(f"/v1/agent/service/deregister/{name}")


def test_the_held_back_output_reaches_the_catalog_within_one_and_a_half_intervals(
    lagging: Lagging, name: str, check_target: StatusServer
) -> None:
    check_target.status = 500
    check_id = _register(lagging.api, name, check_target.url)
    try:
        wait_for(lambda: _agent_check(lagging.api, check_id).get("Output"), 15, "the first run")
        created = _catalog_check(lagging.api, name, check_id)["CreateIndex"]

        def written() -> dict[str, Any] | None:
            check = _catalog_check(lagging.api, name, check_id)
            return check if check["Output"] else None

        catalog = wait_for(written, 1.5 * lagging.interval + 10, "the deferred write")
        assert catalog["Status"] == "critical" and "500" in catalog["Output"]
        assert catalog["ModifyIndex"] > created
    finally:
        lagging.api.put(f"/v1/agent/service/deregister/{name}")
