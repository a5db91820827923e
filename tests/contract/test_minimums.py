"""An interval under 1 s and a deregistration delay under the minimum are raised, not refused.

Consul's ``addCheck`` (agent/agent.go) raises an HTTP or TCP check's interval to
``checks.MinInterval`` (1 s) and DeregisterCriticalServiceAfter to
``check_deregister_interval_min`` (1 m; the double runs with 1 s), logging "check has interval
below minimum" and "check has deregister interval below minimum" with the check's ID. The check
keeps showing the interval it was given. The log lines are the registry's (a real agent's log
is not in reach of the suite); the rest holds for both.
"""

from __future__ import annotations

import pytest

from .conftest import ConsulTarget
from .helpers import Api, wait_for

pytestmark = pytest.mark.contract

DEADLINE = 15.0


def test_values_under_consuls_minimums_are_taken_and_shown_as_given(
    api: Api, consul_target: ConsulTarget, name: str, registered: list[str]
) -> None:
    check = {
        "TCP": "127.0.0.1:9",
        "Interval": "100ms",
        "DeregisterCriticalServiceAfter": "10ms",
    }
    registered.append(name)
    response = api.put("/v1/agent/service/register", json={"Name": name, "Check": check})
    assert response.status_code == 200, response.text
    shown = api.get("/v1/agent/checks").json()[f"service:{name}"]
    assert shown["Interval"] == "100ms"
    if consul_target.double is None:
        return
    double = consul_target.double
    interval = f"check has interval below minimum: check=service:{name} minimum_interval=1s"
    reap = f"check has deregister interval below minimum: check=service:{name}"
    wait_for(lambda: interval in double.read_log(), DEADLINE, "the interval warning")
    wait_for(lambda: reap in double.read_log(), DEADLINE, "the deregister interval warning")
