"""The compose stack's Consul keeps nothing on disk, as a dev agent should.

The image's entrypoint (hashicorp/consul's docker-entrypoint.sh) runs every ``agent`` command
as ``consul agent -data-dir=/consul/data -config-dir=/consul/config ...``, and /consul/data is
a VOLUME. An agent with a data dir persists each API registration with its ACL token, in
plaintext, and restores it on restart, ``-dev`` or not (agent/agent.go ``persistService``,
``loadServices``). The stack mounts a tmpfs there, so a restart forgets everything, no volume
keeps a token, and the contract suite's restart test describes the stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = "/consul/data"


def _consul() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["consul"]
    assert isinstance(service, dict)
    return service


def _target(mount: object) -> str:
    if isinstance(mount, dict):
        return str(mount.get("target", ""))
    parts = str(mount).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def test_consuls_data_dir_is_a_tmpfs() -> None:
    tmpfs = _consul().get("tmpfs", [])
    assert any(str(entry).split(":")[0] == DATA_DIR for entry in tmpfs), tmpfs


def test_no_volume_holds_consuls_data_dir() -> None:
    volumes = _consul().get("volumes", [])
    assert all(_target(volume) != DATA_DIR for volume in volumes), volumes


def test_the_agent_runs_in_dev_mode_with_the_entrypoints_data_dir() -> None:
    service = _consul()
    assert str(service["command"]).split()[:2] == ["agent", "-dev"]
    # A -data-dir of its own would move the data away from the tmpfs.
    assert "-data-dir" not in str(service["command"])
    assert "CONSUL_DATA_DIR" not in service.get("environment", {})
