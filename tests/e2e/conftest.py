"""Fixtures of the Docker end-to-end tests: the compose stack, up and routing.

The tests need a running stack: `.ci/e2e` brings one up (and sets ``E2E_REQUIRE_STACK=1``, so a
stack that does not answer fails the run); a developer can run them against their own with
``make up`` then ``.venv/bin/pytest -m e2e tests/e2e``. Without either they are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.e2e.stack import ADMIN, Stack, session
from tests.integration.harness import wait_for

SERVICES = ("catalog", "quote", "echo")
START_TIMEOUT = 120.0  # images start on a slow storage driver in CI


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The running stack, once the gateway routes to a passing instance of every service."""
    with session() as http:
        try:
            http.get(f"{ADMIN}/_gateway/health", timeout=5)
        except requests.ConnectionError:
            if os.environ.get("E2E_REQUIRE_STACK") != "1":
                pytest.skip(f"no compose stack answers at {ADMIN}; start one with `make up`")
        wait_for(
            lambda: http.get(f"{ADMIN}/_gateway/health", timeout=5).status_code == 200,
            START_TIMEOUT,
            "the gateway's /_gateway/health to answer 200",
        )
    running = Stack()
    wait_for(
        lambda: all(running.gateway_passing(name) for name in SERVICES),
        START_TIMEOUT,
        f"a passing instance of each of {', '.join(SERVICES)} in the gateway",
    )
    yield running
    running.close()


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Print a line to the terminal even while pytest captures output (for the CI log)."""

    def write(line: str) -> None:
        with capsys.disabled():
            print(f"\n[e2e] {line}")

    return write
