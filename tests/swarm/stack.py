"""The Swarm stack as the swarm tests see it: its services and tasks, the gateway and the agent.

Which stack: ``SWARM_STACK`` (``.ci/swarm`` deploys ``mesh`` with deploy/swarm/stack.ci.yml).
Traffic goes only to the ports that file publishes in host mode on 127.0.0.1: the gateway
(8080), its admin API (9090) and the node's agent (8500, the bundled registry in CI).

Secrets are read where Swarm mounts them, inside the tasks that hold them: the gateway's admin
token and its Consul token (read-only: may read services and nodes).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any

import docker
from docker.errors import NotFound
from docker.models.containers import Container
from docker.models.services import Service

from tests.stacks import session

GATEWAY = "http://127.0.0.1:8080"
ADMIN = "http://127.0.0.1:9090"
AGENT = "http://127.0.0.1:8500"  # the node's agent, published in host mode
SERVICE_PORT = 8000  # the sample services' SERVICE_PORT
CONSUL_TOKEN_FILE = "/run/secrets/consul_token"  # CONSUL_HTTP_TOKEN_FILE in stack.yml
ADMIN_TOKEN_FILE = "/run/secrets/admin_token"  # GATEWAY_ADMIN_TOKEN_FILE


def stack_name() -> str:
    """``SWARM_STACK``, else ``mesh`` (the name the README and .ci/swarm deploy under)."""
    return os.environ.get("SWARM_STACK", "").strip() or "mesh"


def docker_cli() -> list[str]:
    """``SWARM_DOCKER`` (.ci/swarm sets the engine's own CLI), else ``docker`` from PATH."""
    return shlex.split(os.environ.get("SWARM_DOCKER", "").strip() or "docker")


class SwarmStack:
    """Swarm's view (services, tasks, containers) and the gateway's and the agent's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.docker = docker.from_env(timeout=60)
        self.http = session()
        self.admin = session()
        self.admin.headers["Authorization"] = f"Bearer {self.secret('gateway', ADMIN_TOKEN_FILE)}"
        self.agent = session()
        self.agent.headers["X-Consul-Token"] = self.secret("gateway", CONSUL_TOKEN_FILE)

    def close(self) -> None:
        """Release the HTTP and Docker connections."""
        for http in (self.http, self.admin, self.agent):
            http.close()
        self.docker.close()

    def cli(self, *args: str, timeout: float = 60) -> str:
        """Run a docker CLI command (as an operator would); fail with its output."""
        command = [*docker_cli(), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=timeout
        )
        assert result.returncode == 0, (
            f"{shlex.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
        return result.stdout

    def service(self, component: str) -> Service:
        """The Swarm service of *component* (``<stack>_<component>``), freshly read."""
        return self.docker.services.get(f"{self.name}_{component}")

    def containers(self, component: str) -> list[Container]:
        """The running containers of *component*'s current tasks, in a stable order.

        Healthy or not yet: Swarm reports a task as "starting" until its healthcheck passes.
        """
        found = []
        for task in self.service(component).tasks(filters={"desired-state": "running"}):
            cid = task["Status"].get("ContainerStatus", {}).get("ContainerID")
            if not cid:
                continue
            try:
                container = self.docker.containers.get(cid)
            except NotFound:  # removed between the two calls
                continue
            if container.status == "running":
                found.append(container)
        return sorted(found, key=lambda c: c.id)

    def secret(self, component: str, path: str) -> str:
        """A file only *component*'s tasks can read (a Swarm secret), read in one of them."""
        [container, *_] = self.containers(component)
        result = container.exec_run(["cat", path])
        assert result.exit_code == 0, f"cat {path} in {component}: {result.output!r}"
        return str(result.output.decode()).strip()

    def gateway_passing(self, component: str) -> set[str]:
        """IDs of the instances of *component* the gateway routes to (/_gateway/routes)."""
        answer = self.admin.get(f"{ADMIN}/_gateway/routes", timeout=5)
        assert answer.status_code == 200, answer.text
        for entry in answer.json()["services"]:
            if entry["service"] == component:
                instances: list[dict[str, Any]] = entry["instances"]
                return {i["id"] for i in instances if i["status"] == "passing"}
        return set()

    def agent_passing(self, component: str) -> set[str]:
        """IDs of the instances of *component* whose checks pass, as the node's agent says."""
        answer = self.agent.get(f"{AGENT}/v1/health/service/{component}?passing", timeout=5)
        assert answer.status_code == 200, answer.text
        return {entry["Service"]["ID"] for entry in answer.json()}


def instance_id(component: str, container: Container) -> str:
    """The Consul service ID the instance in *container* registers (see discovery.settings)."""
    return f"{component}-{container.attrs['Config']['Hostname']}-{SERVICE_PORT}"
