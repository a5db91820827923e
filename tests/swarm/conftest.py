"""Fixtures of the Docker Swarm tests: the stack, deployed and routing.

``.ci/swarm`` deploys the stack on a single-node swarm and sets ``SWARM_REQUIRE_STACK=1``, so a
stack that does not answer fails the run; without a deployed stack the tests are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.integration.harness import wait_for
from tests.swarm.stack import ADMIN, SwarmStack, session, stack_name

SERVICES = ("catalog", "quote", "echo")
START_TIMEOUT = 180.0  # tasks restart until consul-acl-init made their tokens; vfs is slow


@pytest.fixture(scope="session")
def swarm() -> Iterator[SwarmStack]:
    """The deployed stack, once the gateway routes to a passing instance of every service."""
    with session() as http:
        try:
            http.get(f"{ADMIN}/_gateway/health", timeout=5)
        except requests.ConnectionError:
            if os.environ.get("SWARM_REQUIRE_STACK") != "1":
                pytest.skip(f"no Swarm stack answers at {ADMIN}; .ci/swarm deploys one")
        wait_for(
            lambda: http.get(f"{ADMIN}/_gateway/health", timeout=5).status_code == 200,
            START_TIMEOUT,
            "the gateway's /_gateway/health to answer 200",
        )
    stack = SwarmStack(stack_name())
    wait_for(
        lambda: all(stack.gateway_passing(name) for name in SERVICES),
        START_TIMEOUT,
        f"a passing instance of each of {', '.join(SERVICES)} in the gateway",
    )
    yield stack
    stack.close()


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Print a line to the terminal even while pytest captures output (for the CI log)."""

    def write(line: str) -> None:
        with capsys.disabled():
            print(f"\n[swarm] {line}")

    return write
