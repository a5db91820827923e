"""Settings shared by every test folder: where an external Consul agent is, if any, and a check
that the gateway's compiled hot path (``make compile``) is not older than its sources.

``--consul-addr http://host:port`` (or ``CONSUL_TEST_ADDR``, a variable meant for this alone) points
tests at a real Consul agent; without either, folders start the Consul test double themselves.
Folder-specific fixtures live in each folder's own conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

from gateway.compiled import stale


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a compiled module older than its source: the tests would pass or fail
    for code that is no longer there."""
    old = stale()
    if old:
        pytest.exit(
            f"compiled modules older than their sources: {', '.join(old)}; run `make compile` "
            "(or `make clean-compiled` to test them as plain Python)",
            returncode=4,
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--consul-addr``."""
    parser.addoption(
        "--consul-addr",
        default=None,
        metavar="URL",
        help="run against this Consul agent instead of the test double "
        "(default: $CONSUL_TEST_ADDR, else start the double; never $CONSUL_HTTP_ADDR, which "
        "may name the agent `make run` uses)",
    )


def external_addr(option: str | None, environ: Mapping[str, str]) -> str | None:
    """The agent the tests should use: ``--consul-addr``, else ``CONSUL_TEST_ADDR``, else None.

    Never ``CONSUL_HTTP_ADDR``: the README has users export it for ``make run``, and the
    contract suite registers, deregisters and restarts things on whatever agent it is given.
    """
    addr = option or environ.get("CONSUL_TEST_ADDR")
    if not addr:
        return None
    if "://" not in addr:
        addr = f"http://{addr}"
    return addr.rstrip("/")


@pytest.fixture(scope="session")
def external_consul_addr(pytestconfig: pytest.Config) -> str | None:
    """The external Consul agent's base URL ("http://host:port"), or None to use the double."""
    return external_addr(pytestconfig.getoption("--consul-addr"), os.environ)
