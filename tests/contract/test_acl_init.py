"""The compose stack's ACL init step (deploy/consul/acl_init.py) against an ACL-enabled agent.

The script runs as the compose service does, as a process with its state and token folders
(here temporary ones standing in for the volumes). It needs an agent whose ACLs it can
bootstrap, and one that loses its state on restart as a dev agent does: the double (``--acl``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry.launcher import REPO_ROOT, ConsulDouble

from .helpers import Api

pytestmark = pytest.mark.contract

SCRIPT = REPO_ROOT / "deploy" / "consul" / "acl_init.py"
COMPONENTS = ("catalog", "echo", "quote", "gateway")


@dataclass
class InitStep:
    """The init step's folders, and how to run it against one agent."""

    addr: str
    state_dir: Path
    tokens_dir: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the script to completion; its output is returned, not printed."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "CONSUL_HTTP_ADDR": self.addr,
            "ACL_SERVICES": "catalog echo quote",
            "ACL_SERVICE_READS": "quote=catalog",
            "ACL_STATE_DIR": str(self.state_dir),
            "ACL_TOKENS_DIR": str(self.tokens_dir),
            "ACL_TOKEN_OWNER": f"{os.getuid()}:{os.getgid()}",
            "ACL_INIT_TIMEOUT": "20",
        }
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def token(self, component: str) -> str:
        """The token the step wrote for ``component``."""
        return (self.tokens_dir / component / "token").read_text()

    def secrets(self) -> list[str]:
        """Every secret the step keeps: the components' tokens, the admin and management ones."""
        found = [self.token(c) for c in COMPONENTS]
        found.append((self.tokens_dir / "gateway-admin" / "admin-token").read_text())
        found.append(self.run("management-token").stdout.strip())
        return found


@pytest.fixture
def init_step(fresh_acl_double: ConsulDouble, tmp_path: Path) -> InitStep:
    """The step's folders, one per component volume, for a fresh ACL-enabled double."""
    tokens_dir = tmp_path / "tokens"
    for component in (*COMPONENTS, "gateway-admin"):
        (tokens_dir / component).mkdir(parents=True)
    (tmp_path / "state").mkdir()
    return InitStep(fresh_acl_double.addr, tmp_path / "state", tokens_dir)


def register(addr: str, token: str, name: str) -> int:
    """Register one instance of ``name`` with a TTL check using ``token``; the status code."""
    with Api(addr, token) as api:
        body = {"Name": name, "ID": f"{name}-init-test", "Check": {"TTL": "10m"}}
        return api.put("/v1/agent/service/register", json=body).status_code


def test_each_component_gets_a_token_for_its_own_name_only(init_step: InitStep) -> None:
    result = init_step.run()
    assert result.returncode == 0, result.stdout + result.stderr
    addr = init_step.addr
    for component in COMPONENTS:
        mode = (init_step.tokens_dir / component / "token").stat().st_mode & 0o777
        assert mode == 0o400, f"{component}: {oct(mode)}"
    assert register(addr, init_step.token("catalog"), "catalog") == 200
    assert register(addr, init_step.token("catalog"), "quote") == 403
    assert register(addr, init_step.token("quote"), "catalog") == 403
    assert register(addr, init_step.token("gateway"), "gateway") == 403
    assert register(addr, "", "catalog") == 403
    with Api(addr, init_step.token("quote")) as quote:
        assert [e["Service"]["Service"] for e in quote.get("/v1/health/service/catalog").json()]
    with Api(addr, init_step.token("gateway")) as gateway:
        assert "catalog" in gateway.get("/v1/catalog/services").json()
    with Api(addr, init_step.token("echo")) as echo:
        assert echo.get("/v1/health/service/catalog").json() == []
    output = result.stdout + result.stderr
    assert all(secret not in output for secret in init_step.secrets())


def test_running_again_keeps_every_token_even_after_consul_lost_its_state(
    init_step: InitStep, fresh_acl_double: ConsulDouble
) -> None:
    assert init_step.run().returncode == 0
    before = init_step.secrets()
    again = init_step.run()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "token catalog: kept" in again.stdout
    assert init_step.secrets() == before

    fresh_acl_double.stop()  # a dev agent restarted: no ACLs, no tokens
    fresh_acl_double.start()
    catalog_token = init_step.token("catalog")
    assert register(init_step.addr, catalog_token, "catalog") == 403
    after_restart = init_step.run()
    assert after_restart.returncode == 0, after_restart.stdout + after_restart.stderr
    assert "bootstrapped ACLs" in after_restart.stdout
    assert init_step.secrets()[:-1] == before[:-1]  # the management token is a new one
    assert register(init_step.addr, catalog_token, "catalog") == 200


def test_an_agent_bootstrapped_by_someone_else_stops_the_step(init_step: InitStep) -> None:
    with Api(init_step.addr) as anonymous:
        assert anonymous.put("/v1/acl/bootstrap").status_code == 200
    result = init_step.run()
    assert result.returncode == 1
    assert "docker compose down -v" in result.stdout
