"""The Swarm stack on a single-node swarm: routing, registration, hardening, scaling, a rollout.

These tests change the stack they run against: they scale catalog to 3 replicas and replace
all three with a rolling ``docker service update --force``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from docker.models.containers import Container

from tests.integration.harness import wait_for
from tests.load import Load
from tests.stacks import SERVICES
from tests.swarm.stack import AGENT, CONSUL_TOKEN_FILE, GATEWAY, SwarmStack, instance_id

pytestmark = pytest.mark.swarm

Report = Callable[[str], None]
# start-first brings each new task up, healthy and registered, before Swarm stops an old one,
# and the old one deregisters before it drains: a rollout should cost no request at all.
MAX_FAILED = 0
ROLLOUT_TIMEOUT = 420.0  # three tasks, each: start on vfs, healthcheck, monitor 15s, delay 5s


def scale(swarm: SwarmStack, component: str, count: int) -> list[Container]:
    """Run *count* tasks of *component*; wait until the agent and the gateway see all pass."""
    # The CLI changes the replica count only (the SDK's scale() sends the whole spec back).
    swarm.cli("service", "scale", "--detach", f"{swarm.name}_{component}={count}")

    def running() -> list[Container] | None:
        found = swarm.containers(component)
        return found if len(found) == count else None

    containers = wait_for(running, 120, f"{count} running {component} tasks")
    wanted = {instance_id(component, c) for c in containers}
    wait_for(lambda: wanted <= swarm.agent_passing(component), 90, f"{sorted(wanted)} passing")
    wait_for(
        lambda: wanted <= swarm.gateway_passing(component),
        90,
        f"the gateway to route to {sorted(wanted)}",
    )
    return containers


def test_the_gateway_routes_to_every_service_through_its_host_port(swarm: SwarmStack) -> None:
    items = swarm.http.get(f"{GATEWAY}/catalog/items", timeout=10)
    assert items.status_code == 200, items.text
    assert items.json()["items"]
    assert items.headers["X-Instance-ID"].startswith("catalog-")

    quote = swarm.http.get(
        f"{GATEWAY}/quote/quote", params={"sku": "apple", "qty": "2"}, timeout=10
    )
    assert quote.status_code == 200, quote.text
    assert quote.json()["total_cents"] == 2 * quote.json()["unit_price_cents"]

    echo = swarm.http.get(f"{GATEWAY}/echo/anything", timeout=10)
    assert echo.status_code == 200, echo.text
    assert echo.headers["X-Instance-ID"].startswith("echo-")


def test_every_task_registers_with_the_agent_on_its_own_node(swarm: SwarmStack) -> None:
    answer = swarm.agent.get(f"{AGENT}/v1/agent/services", timeout=5)
    assert answer.status_code == 200, answer.text
    registered = set(answer.json())
    for component in SERVICES:
        containers = swarm.containers(component)
        assert containers, component
        for container in containers:
            env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
            assert env["CONSUL_HTTP_ADDR"] == "http://host.docker.internal:8500"
            assert instance_id(component, container) in registered


def test_tasks_run_read_only_without_capabilities_as_a_user_with_their_own_secret(
    swarm: SwarmStack,
) -> None:
    for component in (*SERVICES, "gateway"):
        for container in swarm.containers(component):
            host = container.attrs["HostConfig"]
            assert host["ReadonlyRootfs"] is True, component
            assert host["CapDrop"] == ["ALL"], component
            assert host["PidsLimit"] and host["Memory"], component
            assert container.attrs["Config"]["User"] not in ("", "0", "root"), component
            mode = container.exec_run(["stat", "-c", "%a %u", CONSUL_TOKEN_FILE])
            assert mode.output.decode().split() == ["400", "10001"], component


def test_the_agent_refuses_registrations_without_the_services_own_token(
    swarm: SwarmStack,
) -> None:
    body = {"Name": "quote", "ID": "quote-swarm-acl-test", "Port": 1}
    anonymous = swarm.http.put(f"{AGENT}/v1/agent/service/register", json=body, timeout=5)
    assert anonymous.status_code == 403, anonymous.text
    catalog_token = swarm.secret("catalog", CONSUL_TOKEN_FILE)
    other = swarm.http.put(
        f"{AGENT}/v1/agent/service/register",
        json=body,
        headers={"X-Consul-Token": catalog_token},
        timeout=5,
    )
    assert other.status_code == 403, other.text


def test_scaling_to_three_puts_three_instances_behind_the_gateway(
    swarm: SwarmStack, report: Report
) -> None:
    before = {c.id for c in swarm.containers("catalog")}
    replicas = scale(swarm, "catalog", 3)
    assert before <= {c.id for c in replicas}, "scaling replaced running tasks"
    wanted = {instance_id("catalog", c) for c in replicas}
    served: Counter[str] = Counter()

    def every_replica_served() -> bool:
        answer = swarm.http.get(f"{GATEWAY}/catalog/items", timeout=10)
        assert answer.status_code == 200, answer.text
        served[answer.headers["X-Instance-ID"]] += 1
        return set(served) >= wanted

    wait_for(every_replica_served, 60, f"a request served by each of {sorted(wanted)}")
    assert set(served) == wanted
    report(f"catalog scaled to 3: requests served by {dict(sorted(served.items()))}")


@pytest.mark.timeout(ROLLOUT_TIMEOUT + 120)
def test_a_rolling_update_under_load_fails_no_request(swarm: SwarmStack, report: Report) -> None:
    before = {c.id for c in scale(swarm, "catalog", 3)}
    update = swarm.service("catalog").attrs["Spec"]["UpdateConfig"]
    assert (update["Order"], update["FailureAction"]) == ("start-first", "rollback")

    def replaced() -> list[Container] | None:
        status = swarm.service("catalog").attrs.get("UpdateStatus", {})
        assert not status.get("State", "").startswith(("rollback", "paused")), status
        running = swarm.containers("catalog")
        done = status.get("State") == "completed" and len(running) == 3
        return running if done and not before & {c.id for c in running} else None

    load = Load(
        f"{GATEWAY}/catalog/items",
        threads=4,
        rate=25.0,
        timeout=35.0,  # longer than the gateway's own deadline: a failure is its answer
        max_requests=60_000,
        max_seconds=ROLLOUT_TIMEOUT + 60,
    )
    with load:
        load.wait_for_requests(100, timeout=60)
        swarm.cli("service", "update", "--force", "--detach", f"{swarm.name}_catalog")
        replicas = wait_for(replaced, ROLLOUT_TIMEOUT, "catalog's 3 tasks replaced, start-first")
        wanted = {instance_id("catalog", c) for c in replicas}
        wait_for(lambda: swarm.gateway_passing("catalog") == wanted, 60, f"routes to {wanted}")
        load.wait_for_requests(load.result.sent + 100, timeout=60)
    result = load.result
    report(
        f"rolling update of catalog (3 tasks, start-first) under load: {result.sent} requests, "
        f"{len(result.failures)} failed, p99 {result.percentile(0.99) * 1000:.0f} ms; "
        f"{result.summary()}"
    )
    assert len(result.failures) <= MAX_FAILED, result.describe_failures()
    assert set(result.by_instance()) >= wanted


@pytest.mark.timeout(ROLLOUT_TIMEOUT + 120)
def test_a_rollout_whose_new_task_fails_rolls_back_and_fails_no_request(
    swarm: SwarmStack, report: Report
) -> None:
    before = {c.id for c in scale(swarm, "catalog", 3)}

    def rolled_back() -> str | None:
        status = swarm.service("catalog").attrs.get("UpdateStatus", {})
        assert status.get("State") != "completed", f"the broken rollout completed: {status}"
        return status.get("Message") if status.get("State") == "rollback_completed" else None

    load = Load(
        f"{GATEWAY}/catalog/items",
        threads=4,
        rate=25.0,
        timeout=35.0,
        max_requests=60_000,
        max_seconds=ROLLOUT_TIMEOUT + 60,
    )
    with load:
        load.wait_for_requests(100, timeout=60)
        # A new task that exits at startup (its settings name WEB_THREADS): never healthy.
        service = f"{swarm.name}_catalog"
        swarm.cli("service", "update", "--detach", "--env-add", "WEB_THREADS=0", service)
        message = wait_for(rolled_back, ROLLOUT_TIMEOUT, "Swarm to roll catalog back")
        load.wait_for_requests(load.result.sent + 100, timeout=60)
    result = load.result
    report(
        f"failing rollout of catalog rolled back ({message}): {result.sent} requests, "
        f"{len(result.failures)} failed, p99 {result.percentile(0.99) * 1000:.0f} ms"
    )
    env = swarm.service("catalog").attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env", [])
    assert "WEB_THREADS=0" not in env
    assert {c.id for c in swarm.containers("catalog")} == before
    assert len(result.failures) <= MAX_FAILED, result.describe_failures()
