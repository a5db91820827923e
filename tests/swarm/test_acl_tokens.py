"""The Swarm stack's ACL job (deploy/swarm/acl_tokens.py) against an ACL-enabled agent.

No Docker here, so these run with ``make test``: the job runs as the stack's task does, a
process whose folder holds it and the compose step's module (two Swarm configs in the task)
and whose secrets folder stands in for /run/secrets. The agent is the bundled registry started
with the management token, as Consul servers start with ``acl.tokens.initial_management``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from registry.launcher import REPO_ROOT, ConsulDouble, run_consul_double

COMPONENTS = ("catalog", "echo", "quote", "gateway")


@dataclass
class Job:
    """The job's folders, its secrets, and the agent it talks to."""

    addr: str
    folder: Path
    secrets_dir: Path

    def run(self) -> subprocess.CompletedProcess[str]:
        """Run the job to completion; its output is returned, not printed."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "CONSUL_HTTP_ADDR": self.addr,
            "ACL_SERVICES": "catalog echo quote",
            "ACL_SERVICE_READS": "quote=catalog",
            "ACL_SECRETS_DIR": str(self.secrets_dir),
            "ACL_INIT_TIMEOUT": "20",
        }
        return subprocess.run(
            [sys.executable, str(self.folder / "acl_tokens.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def secret(self, name: str) -> str:
        """A pre-made secret, as secrets.sh would have made it."""
        return (self.secrets_dir / name).read_text()


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Job]:
    """Every secret made up front, and a registry that knows only the management token."""
    folder, secrets_dir = tmp_path / "job", tmp_path / "secrets"
    folder.mkdir()
    secrets_dir.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "swarm" / "acl_tokens.py", folder)
    shutil.copy(REPO_ROOT / "deploy" / "consul" / "acl_init.py", folder)
    names = ["consul_management_token", "consul_agent_token"]
    names += [f"consul_token_{c}" for c in COMPONENTS]
    for name in names:
        (secrets_dir / name).write_text(str(uuid.uuid4()))
    mgmt = (secrets_dir / "consul_management_token").read_text()
    double: ConsulDouble
    with run_consul_double(None, "--acl-token", mgmt) as double:
        yield Job(double.addr, folder, secrets_dir)


def register(addr: str, token: str, name: str) -> int:
    """Register one instance of *name* with a TTL check using *token*; the status code."""
    body = {"Name": name, "ID": f"{name}-swarm-acl-test", "Check": {"TTL": "10m"}}
    headers = {"X-Consul-Token": token} if token else {}
    with requests.Session() as http:
        http.trust_env = False
        return http.put(
            f"{addr}/v1/agent/service/register", json=body, headers=headers, timeout=5
        ).status_code


def test_each_pre_made_secret_becomes_a_token_for_its_own_component_only(job: Job) -> None:
    result = job.run()
    assert result.returncode == 0, result.stdout + result.stderr
    catalog = job.secret("consul_token_catalog")
    assert register(job.addr, catalog, "catalog") == 200
    assert register(job.addr, catalog, "quote") == 403
    assert register(job.addr, job.secret("consul_token_gateway"), "gateway") == 403
    assert register(job.addr, "", "catalog") == 403
    output = result.stdout + result.stderr
    secrets = [p.read_text() for p in job.secrets_dir.iterdir()]
    assert all(secret not in output for secret in secrets)


def test_running_again_keeps_every_token(job: Job) -> None:
    assert job.run().returncode == 0
    again = job.run()
    assert again.returncode == 0, again.stdout + again.stderr
    for name in ("consul-agent", *COMPONENTS):
        assert f"token {name}: kept" in again.stdout


def test_a_missing_secret_stops_the_job_naming_it(job: Job) -> None:
    (job.secrets_dir / "consul_token_echo").unlink()
    result = job.run()
    assert result.returncode == 1
    assert "consul_token_echo" in result.stdout
    assert "secrets.sh" in result.stdout
