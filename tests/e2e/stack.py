"""The running compose stack as the e2e tests see it: compose, containers, gateway and Consul.

Which stack: ``E2E_COMPOSE`` is the compose command with its file options (``.ci/e2e`` sets
``/usr/bin/docker-compose -f docker-compose.yml -f .ci/compose.ci.yml``); without it, the
stack a developer brought up with ``docker compose up`` from the repository root. Traffic goes
only to the published ports on 127.0.0.1.

Secrets come from where the stack keeps them, read inside the containers that hold them: the
gateway's admin token (``/run/gateway/admin-token``, for the admin port) and Consul tokens
(``/run/consul/token``). Consul is read with the gateway's read-only token.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from tests.integration.harness import wait_for
from tests.stacks import session

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "http://127.0.0.1:8080"
ADMIN = "http://127.0.0.1:9090"  # the gateway's admin listener, published on loopback only
CONSUL = "http://127.0.0.1:8500"
SERVICE_PORT = 8000  # the sample services' SERVICE_PORT in the images and the compose file
CONSUL_TOKEN_FILE = "/run/consul/token"  # CONSUL_HTTP_TOKEN_FILE in docker-compose.yml
ADMIN_TOKEN_FILE = "/run/gateway/admin-token"  # GATEWAY_ADMIN_TOKEN_FILE


def compose_command() -> list[str]:
    """``E2E_COMPOSE`` split into words, else Compose v2 if the docker CLI has it, else v1."""
    configured = os.environ.get("E2E_COMPOSE", "").strip()
    if configured:
        return shlex.split(configured)
    docker_cli = shutil.which("docker")
    if docker_cli:
        probe = subprocess.run(
            [docker_cli, "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if probe.returncode == 0:
            return [docker_cli, "compose"]
    return ["docker-compose"]


class Stack:
    """Compose commands, container operations and the gateway's and Consul's views."""

    def __init__(self) -> None:
        self.compose_cmd = compose_command()
        self.docker = docker.from_env()
        self.http = session()
        self.admin = session()
        self.admin.headers["Authorization"] = f"Bearer {self.secret('gateway', ADMIN_TOKEN_FILE)}"
        self.consul = session()
        self.consul.headers["X-Consul-Token"] = self.secret("gateway", CONSUL_TOKEN_FILE)

    def close(self) -> None:
        """Release the HTTP and Docker connections."""
        for http in (self.http, self.admin, self.consul):
            http.close()
        self.docker.close()

    def secret(self, service: str, path: str) -> str:
        """A file only ``service``'s containers can read (a token in its volume), read there."""
        [container, *_] = self.replicas(service)
        result = container.exec_run(["cat", path])
        assert result.exit_code == 0, f"cat {path} in {service}: {result.output!r}"
        return str(result.output.decode()).strip()

    def compose(self, *args: str, timeout: float = 180) -> str:
        """Run a compose subcommand from the repository root; fail with its output."""
        result = subprocess.run(
            [*self.compose_cmd, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        assert result.returncode == 0, (
            f"{shlex.join([*self.compose_cmd, *args])} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
        return result.stdout

    def replicas(self, service: str) -> list[Container]:
        """The running containers of *service*, in a stable order."""
        return [c for c in self.containers(service) if c.status == "running"]

    def containers(self, service: str) -> list[Container]:
        """Every container of *service*, exited ones included, in a stable order."""
        found = [
            self.docker.containers.get(cid)
            for cid in self.compose("ps", "-a", "-q", service).split()
        ]
        return sorted(found, key=lambda c: c.id)

    def scale(self, service: str, count: int) -> list[Container]:
        """Run *count* replicas of *service* and wait until the gateway sees all of them pass."""
        self.compose(
            "up", "-d", "--no-recreate", "--no-build", "--scale", f"{service}={count}", service
        )

        def running() -> list[Container] | None:
            found = self.replicas(service)
            return found if len(found) == count else None

        containers = wait_for(running, 60, f"{count} running {service} containers")
        wanted = {instance_id(service, c) for c in containers}
        wait_for(
            lambda: wanted <= self.gateway_passing(service),
            90,
            f"the gateway to route to {sorted(wanted)}",
        )
        return containers

    def gateway_instances(self, service: str) -> list[dict[str, Any]]:
        """The instances of *service* in the gateway's route table (/_gateway/routes)."""
        answer = self.admin.get(f"{ADMIN}/_gateway/routes", timeout=5)
        assert answer.status_code == 200, answer.text
        for entry in answer.json()["services"]:
            if entry["service"] == service:
                assert isinstance(entry["instances"], list), (
                    "the gateway lists instances only with GATEWAY_ADMIN_DETAIL=true "
                    "(.ci/e2e sets it; set it in .env for your own stack)"
                )
                instances: list[dict[str, Any]] = entry["instances"]
                return instances
        return []

    def gateway_passing(self, service: str) -> set[str]:
        """IDs of the instances of *service* the gateway considers passing."""
        return {i["id"] for i in self.gateway_instances(service) if i["status"] == "passing"}

    def consul_registered(self, service: str) -> set[str]:
        """IDs of every registered instance of *service* in Consul's catalog, passing or not."""
        entries = self.consul.get(f"{CONSUL}/v1/catalog/service/{service}", timeout=5).json()
        return {e["ServiceID"] for e in entries}


def instance_id(service: str, container: Container) -> str:
    """The Consul service ID the instance in *container* registers (see discovery.settings)."""
    return f"{service}-{container.attrs['Config']['Hostname']}-{SERVICE_PORT}"
