"""deploy/kubernetes/consul-tokens.sh, run for real against stand-ins for kubectl and consul.

No cluster here: ``tests/unit/fake_k8s_cli.py`` answers the script's kubectl calls and runs what
it executes "in the server pod" locally, with a fake ``consul`` on PATH. The tests check the
policies against the compose stack's (deploy/consul/acl_init.py), that the Secrets the pods
mount are made and hold the tokens Consul got, that no secret is ever on a command line, and
that a second run changes nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit import fake_k8s_cli
from tests.unit import k8s_manifests as k8s

SCRIPT = k8s.K8S / "consul-tokens.sh"


def _acl_init() -> Any:
    spec = importlib.util.spec_from_file_location(
        "acl_init", k8s.ROOT / "deploy/consul/acl_init.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """Run the script once; return its output and the fakes' state so far."""
    for program in ("kubectl", "consul"):
        shim = tmp_path / "bin" / program
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{fake_k8s_cli.__file__}" {program} "$@"\n'
        )
        shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "FAKE_K8S_STATE": str(tmp_path / "state.json"),
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads((tmp_path / "state.json").read_text())


@pytest.fixture
def first_run(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return _run(tmp_path)


def _normalized(rules: str) -> list[str]:
    return rules.split()


def test_the_policies_are_the_compose_stacks(first_run):
    _, state = first_run
    compose = _acl_init().desired_policies(
        "consul", ["catalog", "echo", "quote"], {"quote": ["catalog"]}, "gateway"
    )
    del compose[_acl_init().AGENT_POLICY]  # the chart's agents have their own tokens
    assert {n: _normalized(r) for n, r in state["policies"].items()} == {
        n: _normalized(r) for n, r in compose.items()
    }


def test_every_secret_the_pods_mount_holds_the_token_consul_was_given(first_run):
    _, state = first_run
    mounted = {
        secret
        for deployment in k8s.of_kind("Deployment")
        for secret in k8s.mounted_secrets(deployment, k8s.containers(deployment)[0]).values()
    }
    assert set(state["secrets"]) == mounted
    tokens = {t["policy"]: t["secret"] for t in state["tokens"]}
    assert len(tokens) == len(state["tokens"]) == 4
    for name, secret in tokens.items():
        assert state["secrets"][f"consul-token-{name}"] == {"token": secret}
    assert len(set(tokens.values())) == 4, "every component has its own secret"
    admin = state["secrets"]["gateway-admin-token"]["admin-token"]
    assert len(admin) == 64 and int(admin, 16) >= 0  # 32 random bytes, hex


def test_no_secret_is_ever_printed_or_on_a_command_line(first_run):
    output, state = first_run
    secrets = [t["secret"] for t in state["tokens"]]
    secrets += [
        fake_k8s_cli.BOOTSTRAP_TOKEN,
        state["secrets"]["gateway-admin-token"]["admin-token"],
    ]
    # Neither here (kubectl) nor in the server pod (consul): no command line names a secret.
    argv = " ".join(" ".join(a) for a in state["argv"])
    for secret in secrets:
        assert secret not in output
        assert secret not in argv


def test_a_second_run_keeps_every_secret(tmp_path):
    _, first = _run(tmp_path)
    output, second = _run(tmp_path)
    assert second["secrets"] == first["secrets"]
    assert second["tokens"] == first["tokens"], "no new token"
    assert second["policies"] == first["policies"]
    assert output.count("exists, kept") == 5
