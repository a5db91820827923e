"""A service starts within Consul's limits, or says which of its settings Consul will not take.

Consul refuses Service Meta past its limits (400 "Invalid Service Meta"), so a service stops at
start-up naming SERVICE_META rather than retrying a registration that can only fail. Consul
raises a check interval under 1 s and a deregistration delay under 1 minute without a word to
the client (agent/agent.go ``addCheck``), so the service says so at start-up, naming the
variable, and stops without claiming to have deregistered an instance Consul did not know.
"""

from __future__ import annotations

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration

DEADLINE = 20.0


def test_a_service_says_at_start_up_which_values_consul_will_raise(
    start_service: StartService,
) -> None:
    service = start_service(
        "echo",
        SERVICE_CHECK_INTERVAL="500ms",
        SERVICE_CHECK_TIMEOUT="200ms",
        SERVICE_DEREGISTER_AFTER="10s",
    )
    log = wait_for(
        lambda: (text := service.log()) and "registered echo-" in text and text,
        DEADLINE,
        "the service to register",
    )
    assert "SERVICE_CHECK_INTERVAL=0.5s is below Consul's minimum check interval" in log
    assert "SERVICE_DEREGISTER_AFTER=10s is below Consul's minimum" in log


def test_service_meta_consul_would_refuse_stops_start_up_naming_the_variable(
    start_service: StartService, consul: ConsulDouble
) -> None:
    service = start_service("echo", wait=False, SERVICE_META="consul-version=2")
    returncode = service.wait_exit(DEADLINE)
    log = service.log()
    assert returncode != 0, log
    assert "SERVICE_META: key 'consul-version' starts with 'consul-'" in log
    services = requests.get(f"{consul.addr}/v1/agent/services", timeout=5).json()
    assert not [key for key in services if key.endswith(f"-{service.port}")], services


def test_a_service_that_consul_already_forgot_stops_without_claiming_to_deregister(
    start_service: StartService, consul: ConsulDouble
) -> None:
    # A keepalive period longer than the test, so that nothing registers the instance again
    # between its removal here and the stop.
    service = start_service("echo", SERVICE_CHECK_INTERVAL="60s", SERVICE_CHECK_TIMEOUT="1s")
    wait_for(lambda: "registered echo-" in service.log(), DEADLINE, "the service to register")
    matches = [
        key
        for key in requests.get(f"{consul.addr}/v1/agent/services", timeout=5).json()
        if key.endswith(f"-{service.port}")
    ]
    assert len(matches) == 1, matches
    removed = requests.put(f"{consul.addr}/v1/agent/service/deregister/{matches[0]}", timeout=5)
    assert removed.status_code == 200
    service.stop()
    log = service.log()
    assert "was not registered any more" in log, log
    assert "deregistered" not in log, log
