"""``make new-service``: a service scaffolded in a copy of the repository runs and is routed.

The copy holds the repository's tracked files as they are in the working tree. The generator
runs there, then the gateway and the new service run from the copy as real gunicorn
processes (with the registry), so the test sees what a checkout plus one command gives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from registry.launcher import ConsulDouble, free_port
from tests.integration.harness import (
    ROOT,
    SERVICE_CONF,
    Process,
    gateway_env,
    service_env,
    stop_all,
    wait_for_status,
)

pytestmark = pytest.mark.integration
NAME = "orders"
BIN = Path(sys.executable).parent


def run(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run *command* in *root*, with the copy (not this checkout) on the import path."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's tracked files, with the new service generated in it."""
    root = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    generated = run(root, sys.executable, "scripts/new_service.py", NAME)
    assert generated.returncode == 0, generated.stderr
    return root


def test_the_generator_writes_the_app_its_test_the_compose_entry_and_a_readme_row(
    repo: Path,
) -> None:
    assert (repo / f"services/{NAME}/app.py").is_file()
    assert (repo / f"services/{NAME}/__init__.py").is_file()
    assert (repo / f"tests/unit/test_service_{NAME}.py").is_file()
    compose = yaml.safe_load((repo / "docker-compose.yml").read_text())
    service, init = compose["services"][NAME], compose["services"]["consul-acl-init"]
    assert service["image"] == f"flask-consul-mesh/{NAME}"
    assert service["build"]["dockerfile"] == "services/Dockerfile"
    assert service["build"]["args"]["SERVICE"] == NAME
    assert f"consul-token-{NAME}:/run/consul:ro" in service["volumes"]
    assert service["environment"]["CONSUL_HTTP_TOKEN_FILE"] == "/run/consul/token"
    assert NAME in init["environment"]["ACL_SERVICES"].split()
    assert f"consul-token-{NAME}:/run/tokens/{NAME}" in init["volumes"]
    assert f"consul-token-{NAME}" in compose["volumes"]
    assert f"| `{NAME}` |" in (repo / "README.md").read_text()


def test_running_it_again_refuses_and_changes_nothing(repo: Path) -> None:
    before = (repo / "docker-compose.yml").read_text()
    again = run(repo, sys.executable, "scripts/new_service.py", NAME)
    assert again.returncode == 1
    assert f"services/{NAME}/ already exists" in again.stderr
    assert (repo / "docker-compose.yml").read_text() == before


def test_the_generated_code_is_lint_clean_and_its_own_test_passes(repo: Path) -> None:
    files = [f"services/{NAME}/app.py", f"tests/unit/test_service_{NAME}.py"]
    for command in (["check"], ["format", "--check"]):
        linted = run(repo, str(BIN / "ruff"), *command, *files)
        assert linted.returncode == 0, linted.stdout + linted.stderr
    tested = run(repo, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", files[1])
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert "3 passed" in tested.stdout


@pytest.fixture(scope="module")
def gateway(repo: Path, consul: ConsulDouble, log_dir: Path) -> Iterator[Process]:
    """The gateway and one instance of the new service, both run from the copy."""
    port, gateway_port = free_port(), free_port()
    service = Process(
        f"{NAME}-{port}", SERVICE_CONF, service_env(NAME, port, consul.addr), port, log_dir, repo
    )
    gateway = Process(
        f"gateway-{gateway_port}",
        "gateway/gunicorn.conf.py",
        gateway_env(gateway_port, consul.addr),
        gateway_port,
        log_dir,
        repo,
    )
    try:
        service.start().wait_http("/health")
        gateway.start().wait_http("/_gateway/routes")
        yield gateway
    finally:
        stop_all([gateway, service])


def test_the_new_service_answers_through_the_gateway(gateway: Process) -> None:
    answer = wait_for_status(
        f"{gateway.url}/{NAME}/hello?name=Ada", 200, 20, f"the gateway to route /{NAME}"
    )
    body = answer.json()
    assert (body["service"], body["greeting"]) == (NAME, "hello, Ada")
    assert body["instance"].startswith(f"{NAME}-") and answer.headers["X-Instance-ID"]


def test_its_errors_carry_the_gateways_request_id(gateway: Process) -> None:
    wait_for_status(f"{gateway.url}/{NAME}/hello", 200, 20, f"the gateway to route /{NAME}")
    refused = requests.get(
        f"{gateway.url}/{NAME}/hello?name=x1", headers={"X-Request-ID": "scaffold-1"}, timeout=5
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "bad_request",
        "detail": "query parameter 'name' must be 1 to 40 letters",
        "status": 400,
        "request_id": "scaffold-1",
    }


def test_an_unknown_service_name_stops_startup_naming_the_variable(
    repo: Path, consul: ConsulDouble, log_dir: Path
) -> None:
    port = free_port()
    env = service_env("nosuch", port, consul.addr, SERVICE_APP="")
    proc = Process(f"nosuch-{port}", SERVICE_CONF, env, port, log_dir, repo).start()
    try:
        assert proc.wait_exit(30) != 0
    finally:
        proc.stop()
    assert "SERVICE_NAME: no service 'nosuch' under services/" in proc.log()
