"""Settings shared by every test folder: where an external Consul agent is, if any.

``--consul-addr http://host:port`` (or the ``CONSUL_HTTP_ADDR`` environment variable) points
tests at a real Consul agent; without either, folders start the Consul test double themselves.
Folder-specific fixtures live in each folder's own conftest.py.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--consul-addr``."""
    parser.addoption(
        "--consul-addr",
        default=None,
        metavar="URL",
        help="run against this Consul agent instead of the test double "
        "(default: $CONSUL_HTTP_ADDR, else start the double)",
    )


@pytest.fixture(scope="session")
def external_consul_addr(pytestconfig: pytest.Config) -> str | None:
    """The external Consul agent's base URL ("http://host:port"), or None to use the double."""
    addr = pytestconfig.getoption("--consul-addr") or os.environ.get("CONSUL_HTTP_ADDR")
    if not addr:
        return None
    if "://" not in addr:
        addr = f"http://{addr}"
    return str(addr).rstrip("/")
