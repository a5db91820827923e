"""DeregisterCriticalServiceAfter: services whose check stays critical are reaped.

Consul raises the timeout to its 1-minute minimum and reaps every 30 s (agent/agent.go
``addCheck`` and ``reapServicesInternal``). The timings come from /v1/agent/self DebugConfig:
the double's test-only flags against the double, Consul's own values against a real agent.
"""

from __future__ import annotations

import time

import pytest

from registry.durations import format_duration

from .conftest import ConsulTarget
from .helpers import Api, wait_for

pytestmark = pytest.mark.contract


def _deadline(target: ConsulTarget) -> float:
    return target.min_deregister_after + 3 * target.reap_interval + 10


def _gone(api: Api, service_id: str) -> bool:
    return service_id not in api.get("/v1/agent/services").json()


def test_service_with_a_check_critical_too_long_is_deregistered(
    api: Api, consul_target: ConsulTarget, name: str, registered: list[str]
) -> None:
    after = format_duration(round(consul_target.min_deregister_after * 1e9))
    dying, healthy = f"{name}-dying", f"{name}-healthy"
    registered.extend([dying, healthy])
    for service_id, status in ((dying, "critical"), (healthy, "passing")):
        check = {"TTL": "10m", "Status": status, "DeregisterCriticalServiceAfter": after}
        body = {"Name": name, "ID": service_id, "Check": check}
        assert api.put("/v1/agent/service/register", json=body).status_code == 200
    wait_for(lambda: _gone(api, dying), _deadline(consul_target), f"{dying} to be reaped")
    assert f"service:{dying}" not in api.get("/v1/agent/checks").json()
    assert [e["ServiceID"] for e in api.get(f"/v1/catalog/service/{name}").json()] == [healthy]


def test_deregister_timeout_below_the_minimum_is_raised_to_it(
    api: Api, consul_target: ConsulTarget, name: str, registered: list[str]
) -> None:
    registered.append(name)
    check = {"TTL": "10m", "DeregisterCriticalServiceAfter": "1ms"}
    registered_at = time.monotonic()
    assert api.put("/v1/agent/service/register", json={"Name": name, "Check": check}).ok
    wait_for(lambda: _gone(api, name), _deadline(consul_target), f"{name} to be reaped")
    assert time.monotonic() - registered_at >= consul_target.min_deregister_after
