"""Who may do what in the compose stack: Consul ACLs, the admin plane, container hardening.

Attacks come the way an attacker with a foothold would: from the host's loopback to the
published ports, with a stolen service token, or from inside a container. Each token is read
from the volume of the container that holds it. The last test restarts Consul and leaves the
stack as it found it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.e2e.stack import ADMIN, CONSUL, CONSUL_TOKEN_FILE, GATEWAY, Stack, session
from tests.integration.harness import wait_for

pytestmark = pytest.mark.e2e

COMPONENTS = ("catalog", "quote", "echo", "gateway")
#: The images' non-root user (USER in every Dockerfile); the double's image runs as its own.
APP_USER = "10001:10001"


@pytest.fixture
def consul(stack: Stack) -> Iterator[requests.Session]:
    """A session to Consul's published port that sends no token unless a test adds one."""
    http = session()
    yield http
    http.close()


def register(
    http: requests.Session, name: str, token: str = "", service_id: str = ""
) -> requests.Response:
    """Try to register an instance of ``name`` (with a TTL check, so it is never routed)."""
    headers = {"X-Consul-Token": token} if token else {}
    body = {
        "Name": name,
        "ID": service_id or f"{name}-e2e-{uuid.uuid4().hex[:8]}",
        "Check": {"TTL": "1m"},
    }
    return http.put(f"{CONSUL}/v1/agent/service/register", json=body, headers=headers, timeout=10)


def test_a_service_token_registers_its_own_name_but_not_another_services(
    stack: Stack, consul: requests.Session
) -> None:
    catalog_token = stack.secret("catalog", CONSUL_TOKEN_FILE)
    own_id = f"catalog-e2e-{uuid.uuid4().hex[:8]}"
    own = register(consul, "catalog", catalog_token, own_id)
    assert own.status_code == 200, own.text  # the token works, so the refusal below is ACLs
    try:
        stolen = register(consul, "quote", catalog_token)
        assert stolen.status_code == 403
        assert "lacks permission 'service:write' on \"quote\"" in stolen.text
    finally:
        headers = {"X-Consul-Token": catalog_token}
        consul.put(f"{CONSUL}/v1/agent/service/deregister/{own_id}", headers=headers, timeout=10)


def test_an_anonymous_client_cannot_register_or_read_anything(
    stack: Stack, consul: requests.Session
) -> None:
    for name in ("catalog", "aaa"):
        refused = register(consul, name)
        assert refused.status_code == 403
        assert refused.text.startswith("Permission denied: anonymous token lacks permission")
    assert consul.get(f"{CONSUL}/v1/catalog/services", timeout=10).json() == {}
    assert consul.get(f"{CONSUL}/v1/health/service/catalog", timeout=10).json() == []


def test_the_gateway_token_reads_everything_and_registers_nothing(
    stack: Stack, consul: requests.Session
) -> None:
    gateway_token = stack.secret("gateway", CONSUL_TOKEN_FILE)
    for name in ("gateway", "catalog"):
        refused = register(consul, name, gateway_token)
        assert refused.status_code == 403
        assert "lacks permission 'service:write'" in refused.text
    headers = {"X-Consul-Token": gateway_token}
    services = consul.get(f"{CONSUL}/v1/catalog/services", headers=headers, timeout=10).json()
    assert {"catalog", "quote", "echo"} <= services.keys()


def test_each_component_mounts_only_its_own_token_volume_read_only(stack: Stack) -> None:
    for component in COMPONENTS:
        for container in stack.replicas(component):
            volumes = {
                m["Name"]: m["RW"] for m in container.attrs["Mounts"] if m["Type"] == "volume"
            }
            own = {
                name: rw
                for name, rw in volumes.items()
                if name.endswith(f"_consul-token-{component}")
            }
            assert list(own.values()) == [False], f"{container.name}: {volumes}"
            others = [n for n in volumes if "consul-token-" in n or n.endswith("_consul-acl-init")]
            assert others == list(own), f"{container.name} mounts another's token: {volumes}"


def test_the_admin_api_is_only_on_the_admin_port_and_needs_the_token(stack: Stack) -> None:
    with session() as stranger:
        assert stranger.get(f"{ADMIN}/_gateway/routes", timeout=10).status_code == 401
        assert stranger.get(f"{ADMIN}/_gateway/health", timeout=10).status_code == 200
        assert stranger.get(f"{GATEWAY}/_gateway/routes", timeout=10).status_code == 404
    assert stack.admin.get(f"{ADMIN}/_gateway/routes", timeout=10).status_code == 200


def test_every_container_runs_hardened(stack: Stack) -> None:
    services = ("consul", "consul-acl-init", *COMPONENTS)
    for service in services:
        containers = stack.containers(service)
        assert containers, f"no container of {service}"
        for container in containers:
            host = container.attrs["HostConfig"]
            where = f"{container.name} ({service})"
            assert host["ReadonlyRootfs"] is True, where
            assert host["CapDrop"] == ["ALL"], where
            assert "no-new-privileges:true" in (host["SecurityOpt"] or []), where
            assert host["Memory"] > 0 and host["PidsLimit"] > 0, where
            if service in COMPONENTS:
                assert container.attrs["Config"]["User"] == APP_USER, where
                assert not host["CapAdd"], where


def test_inside_a_service_the_root_filesystem_is_read_only_and_privileges_are_gone(
    stack: Stack,
) -> None:
    container = stack.replicas("catalog")[0]
    probe = (
        "import os\n"
        "try:\n"
        "    open('/app/owned', 'w')\n"
        "except OSError as err:\n"
        "    print('rootfs:', err.strerror)\n"
        "open('/tmp/scratch', 'w').write('ok')\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/1/status').read().splitlines())\n"
        "print('uid:', os.getuid(), 'CapBnd:', status['CapBnd'].strip(),\n"
        "      'NoNewPrivs:', status['NoNewPrivs'].strip())\n"
    )
    result = container.exec_run(["python3", "-c", probe])
    output = result.output.decode()
    assert result.exit_code == 0, output
    assert "rootfs: Read-only file system" in output
    # CapBnd: the bounding set of the service's process (PID 1); empty only with cap_drop ALL.
    assert "uid: 10001 CapBnd: 0000000000000000 NoNewPrivs: 1" in output


def test_after_consul_loses_its_state_compose_up_restores_every_token(
    stack: Stack, consul: requests.Session, report: Callable[[str], None]
) -> None:
    """A dev agent forgets its ACLs on restart; `up` runs the init step again, which gives
    Consul the same secrets back, so the running components carry on without a restart."""
    gateway_token = {"X-Consul-Token": stack.secret("gateway", CONSUL_TOKEN_FILE)}
    stack.compose("restart", "consul")
    wait_for(
        lambda: consul.get(f"{CONSUL}/v1/status/leader", timeout=5).status_code == 200,
        60,
        "the restarted Consul to answer",
    )
    forgotten = consul.get(f"{CONSUL}/v1/catalog/services", headers=gateway_token, timeout=10)
    assert forgotten.status_code == 403  # the token is gone with Consul's state

    stack.compose("up", "-d", "--no-build", "--no-recreate")
    wait_for(
        lambda: (
            consul.get(
                f"{CONSUL}/v1/catalog/services", headers=gateway_token, timeout=10
            ).status_code
            == 200
        ),
        60,
        "the gateway's former token to work again",
    )
    wait_for(
        lambda: all(stack.gateway_passing(name) for name in ("catalog", "quote", "echo")),
        120,
        "every service to register again and pass in the gateway",
    )
    # quote finds catalog through its own watcher (its own token), which may take up to one
    # blocking-query wait to drop the index the restarted agent no longer has.
    started = time.monotonic()
    wait_for(
        lambda: (
            stack.http.get(
                f"{GATEWAY}/quote/quote", params={"sku": "apple", "qty": "1"}, timeout=10
            ).status_code
            == 200
        ),
        120,
        "quote to reach catalog again",
    )
    report(f"quote reached catalog again {time.monotonic() - started:.1f}s after the gateway")
