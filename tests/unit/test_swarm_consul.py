"""deploy/swarm's Consul agents, read offline: restarts keep membership, and health checks
test the agent, not the cluster (Consul's defaults from agent/config/builder.go: a client
leaves on SIGTERM and SIGINT unless told not to, a server does not)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

SWARM = Path(__file__).resolve().parents[2] / "deploy" / "swarm"
STACK: dict[str, Any] = yaml.safe_load((SWARM / "stack.yml").read_text())
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def hcl_settings(name: str) -> dict[str, str]:
    """Top-level ``key = value`` lines of one of the agents' HCL files."""
    text = (SWARM / "consul" / name).read_text()
    return dict(re.findall(r"^(\w+)\s*=\s*(\S+)\s*$", text, re.MULTILINE))


def service(name: str) -> dict[str, Any]:
    return dict(STACK["services"][name])


def test_a_client_agent_health_check_needs_no_leader() -> None:
    test = " ".join(service("consul-agent")["healthcheck"]["test"])
    assert "/v1/status/leader" not in test
    assert "http://127.0.0.1:8500/ " in test and "Consul Agent" in test


def test_no_consul_agent_leaves_the_cluster_when_its_task_stops() -> None:
    for name in ("agent.hcl", "server.hcl"):
        settings = hcl_settings(name)
        assert settings.get("leave_on_terminate") == "false", name
        assert settings.get("skip_leave_on_interrupt") == "true", name


def test_a_client_agent_gets_a_node_id_from_its_swarm_node() -> None:
    environment = service("consul-agent")["environment"]
    assert environment["CONSUL_SWARM_NODE_ID"] == "{{.Node.ID}}"
    assert "CONSUL_SWARM_NODE_ID" not in service("consul-server")["environment"]


def run_start_sh(tmp_path: Path, env: dict[str, str]) -> list[str]:
    """start.sh with its secrets and the image's entrypoint swapped for files under tmp."""
    script = (SWARM / "consul" / "start.sh").read_text()
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "consul_agent_token").write_text("agent-secret")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    entrypoint = bin_dir / "docker-entrypoint.sh"
    entrypoint.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    entrypoint.chmod(0o755)
    script = script.replace("/tmp/", f"{tmp_path}/").replace("/run/secrets", str(secrets))
    answer = subprocess.run(
        ["sh", "-c", script, "start.sh"],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return answer.stdout.splitlines()


@pytest.mark.parametrize("swarm_node", ["f1k0nq3v0dz9x8y7w6v5u4t3s", "a"])
def test_start_sh_gives_the_same_uuid_node_id_on_every_start_on_one_node(
    tmp_path: Path, swarm_node: str
) -> None:
    first = run_start_sh(tmp_path, {"CONSUL_SWARM_NODE_ID": swarm_node})
    again = run_start_sh(tmp_path, {"CONSUL_SWARM_NODE_ID": swarm_node})
    other = run_start_sh(tmp_path, {"CONSUL_SWARM_NODE_ID": swarm_node + "x"})
    node_ids = [a for a in first if a.startswith("-node-id=")]
    assert len(node_ids) == 1 and UUID.fullmatch(node_ids[0].removeprefix("-node-id="))
    assert first == again
    assert node_ids[0] not in other


def test_start_sh_passes_no_node_id_to_a_server(tmp_path: Path) -> None:
    args = run_start_sh(tmp_path, {})
    assert args[0] == "agent"
    assert not [a for a in args if a.startswith("-node-id")]
