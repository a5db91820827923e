"""A service behind the gateway sees the client, not the gateway: werkzeug's ProxyFix at work.

The client connects from 127.0.0.2, so its address differs from the gateway's (127.0.0.1),
and the echo service reports the address, scheme and host Flask gives its views.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

import pytest

from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for

pytestmark = pytest.mark.integration
CLIENT = "127.0.0.2"


def get_from_client(gateway: Process, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """GET *path* through the gateway from the client address; the echo's JSON answer."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", gateway.port, timeout=5, source_address=(CLIENT, 0)
    )
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200, body
    answer: dict[str, Any] = json.loads(body)
    return answer


@pytest.fixture(scope="module")
def gateway(
    start_service: StartService, start_gateway: Callable[..., Process], consul: ConsulDouble
) -> Process:
    """A gateway behind one trusted proxy, echo (one trusted hop) and a two-hop echo."""
    start_service("echo")
    start_service("echo", SERVICE_NAME="echotwo", SERVICE_TRUSTED_HOPS="2")
    start_service("echo", SERVICE_NAME="echonone", SERVICE_TRUSTED_HOPS="0")
    for name in ("echo", "echotwo", "echonone"):
        wait_for(lambda n=name: passing_ids(consul.addr, n), 15, f"a passing {name} instance")
    gw = start_gateway(GATEWAY_TRUSTED_HOPS="1")
    for name in ("echo", "echotwo", "echonone"):
        wait_for(lambda n=name: get_from_client(gw, f"/{n}/", {}), 10, f"a route to {name}")
    return gw


def test_a_service_sees_the_clients_address_scheme_and_host(gateway: Process) -> None:
    seen = get_from_client(gateway, "/echo/a", {"Host": "shop.example"})
    assert seen["client"] == {"address": CLIENT, "scheme": "http", "host": "shop.example"}


def test_the_scheme_a_trusted_proxy_saw_reaches_the_service(gateway: Process) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    seen = get_from_client(gateway, "/echo/a", headers)
    # One trusted hop: the gateway's own view of its peer, never the forwarded chain.
    assert seen["client"]["scheme"] == "https" and seen["client"]["address"] == CLIENT


def test_two_trusted_hops_reach_the_address_the_proxy_in_front_saw(gateway: Process) -> None:
    seen = get_from_client(gateway, "/echotwo/a", {"X-Forwarded-For": "203.0.113.9"})
    assert seen["client"]["address"] == "203.0.113.9"


def test_zero_hops_ignore_the_headers_and_see_the_gateway(gateway: Process) -> None:
    seen = get_from_client(gateway, "/echonone/a", {"X-Forwarded-Proto": "https"})
    assert seen["client"]["address"] == "127.0.0.1" and seen["client"]["scheme"] == "http"
