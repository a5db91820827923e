"""Fixtures of the Docker Swarm tests: the stack, deployed and routing.

``.ci/swarm`` deploys the stack on a single-node swarm and sets ``SWARM_REQUIRE_STACK=1``, so a
stack that does not answer fails the run; without a deployed stack the tests are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests import stacks
from tests.swarm.stack import ADMIN, SwarmStack, stack_name

START_TIMEOUT = 180.0  # tasks restart until consul-acl-init made their tokens; vfs is slow


@pytest.fixture(scope="session")
def swarm() -> Iterator[SwarmStack]:
    """The deployed stack, once the gateway routes to a passing instance of every service."""
    missing = f"no Swarm stack answers at {ADMIN}; .ci/swarm deploys one"
    running = stacks.routing_stack(
        ADMIN, lambda: SwarmStack(stack_name()), "SWARM_REQUIRE_STACK", missing, START_TIMEOUT
    )
    yield running
    running.close()


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Print a line to the terminal even while pytest captures output (for the CI log)."""
    return stacks.reporter(capsys, "swarm")
