"""What the compose (tests/e2e) and Swarm (tests/swarm) suites share: reaching a running stack.

Both wait the same way for a stack someone else brought up (``.ci/e2e``, ``.ci/swarm`` or a
developer): the gateway's health first, then a passing instance of every sample service. A
stack that does not answer is skipped, unless the variable the CI script sets demands one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol, TypeVar

import pytest
import requests

from tests.integration.harness import wait_for

SERVICES = ("catalog", "quote", "echo")


class RoutingStack(Protocol):
    def gateway_passing(self, service: str) -> set[str]: ...


S = TypeVar("S", bound=RoutingStack)


def session() -> requests.Session:
    """An HTTP session for 127.0.0.1 that ignores any proxy set in the environment."""
    http = requests.Session()
    http.trust_env = False
    return http


def routing_stack(
    admin: str, make: Callable[[], S], required_by: str, missing: str, timeout: float
) -> S:
    """The stack *make* builds, once its gateway routes to a passing instance of every service.

    Skipped with *missing* when no gateway answers at *admin*, unless ``<required_by>=1``.
    """
    with session() as http:
        try:
            http.get(f"{admin}/_gateway/health", timeout=5)
        except requests.ConnectionError:
            if os.environ.get(required_by) != "1":
                pytest.skip(missing)
        wait_for(
            lambda: http.get(f"{admin}/_gateway/health", timeout=5).status_code == 200,
            timeout,
            "the gateway's /_gateway/health to answer 200",
        )
    stack = make()
    wait_for(
        lambda: all(stack.gateway_passing(name) for name in SERVICES),
        timeout,
        f"a passing instance of each of {', '.join(SERVICES)} in the gateway",
    )
    return stack


def reporter(capsys: pytest.CaptureFixture[str], tag: str) -> Callable[[str], None]:
    """Print a line to the terminal even while pytest captures output (for the CI log)."""

    def write(line: str) -> None:
        with capsys.disabled():
            print(f"\n[{tag}] {line}")

    return write
