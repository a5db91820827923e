"""Fixtures of the Docker end-to-end tests: the compose stack, up and routing.

The tests need a running stack: `.ci/e2e` brings one up (and sets ``E2E_REQUIRE_STACK=1``, so a
stack that does not answer fails the run); a developer can run them against their own with
``make up`` then ``.venv/bin/pytest -m e2e tests/e2e``. Without either they are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests import stacks
from tests.e2e.stack import ADMIN, Stack

START_TIMEOUT = 120.0  # images start on a slow storage driver in CI


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The running stack, once the gateway routes to a passing instance of every service."""
    missing = f"no compose stack answers at {ADMIN}; start one with `make up`"
    running = stacks.routing_stack(ADMIN, Stack, "E2E_REQUIRE_STACK", missing, START_TIMEOUT)
    yield running
    running.close()


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Print a line to the terminal even while pytest captures output (for the CI log)."""
    return stacks.reporter(capsys, "e2e")
