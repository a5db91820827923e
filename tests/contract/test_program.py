"""The registry as a program users run (registry-only): its help and its start-up line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from registry.launcher import ConsulDouble

pytestmark = pytest.mark.contract


def test_help_says_what_the_registry_is_and_is_not() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "registry", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    text = " ".join(done.stdout.split())
    assert "single-node, in-memory" in text
    assert "not for production" in text
    assert "--port PORT" in text


def test_the_start_up_line_names_the_registry(fresh_double: ConsulDouble) -> None:
    log = fresh_double.read_log()
    assert f"registry 1.16.0-mesh-registry listening on 127.0.0.1:{fresh_double.port}" in log
    assert "not production" in log
    assert "consul-double" not in log
