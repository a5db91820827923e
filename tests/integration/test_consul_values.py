"""Values from Consul are data: an instance ID never adds a header or a log line of its own.

Whoever may register a service in Consul chooses its instance IDs, and Consul (as the bundled
registry) takes any string. Each instance here is a well-behaved upstream registered under a
hostile ID, behind a gateway that names the instance in ``X-Upstream-Instance``
(``GATEWAY_DEBUG_HEADERS``), and one that writes text access lines (``upstream=<ID>``), the
format of ``make run``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.harness import Process, wait_for
from tests.integration.hostile_upstream import HostileUpstream, plain
from tests.integration.rawhttp import Answer, request

pytestmark = pytest.mark.integration
FORGED = "2030-01-01 00:00:00,000 CRITICAL gateway forged:1 [req=- trace=-] gateway.proxy: FORGED"
IDS = {
    "crlf": "crlf-1\r\nSet-Cookie: stolen=yes",
    "smuggle": "smuggle-1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
    "cyrillic": "экземпляр-1",
    "forger": f"forger-1\n{FORGED}",
}


@pytest.fixture(scope="module")
def upstreams(consul: ConsulDouble) -> Iterator[list[HostileUpstream]]:
    started = [HostileUpstream(plain) for _ in IDS]
    try:
        for upstream, (name, ident) in zip(started, IDS.items(), strict=True):
            upstream.register(consul.addr, name, ident=ident)
        yield started
    finally:
        for upstream in started:
            upstream.close()


def routed(start_gateway: Callable[..., Process], **env: str) -> Process:
    """A gateway with *env* once it routes to every hostile ID."""
    gw = start_gateway(WEB_CONCURRENCY="1", **env)

    def every_service() -> bool:
        body = requests.get(f"{gw.admin_url}/_gateway/routes", timeout=5).json()
        return {s["service"] for s in body["services"] if s["passing"]} >= set(IDS)

    wait_for(every_service, 15, "routes to every hostile ID")
    return gw


@pytest.fixture(scope="module")
def debug_headers(
    start_gateway: Callable[..., Process], upstreams: list[HostileUpstream]
) -> Process:
    return routed(start_gateway, GATEWAY_DEBUG_HEADERS="true")


@pytest.fixture(scope="module")
def text_log(start_gateway: Callable[..., Process], upstreams: list[HostileUpstream]) -> Process:
    return routed(start_gateway, LOG_FORMAT="text", ACCESS_LOG="true")


def get(gateway: Process, service: str) -> Answer:
    reply = request(gateway.port, f"GET /{service}/x HTTP/1.1\r\nHost: gw\r\n\r\n".encode())
    assert isinstance(reply, Answer), reply
    return reply


@pytest.mark.parametrize("service", ["crlf", "smuggle"])
def test_an_instance_id_with_crlf_adds_no_header_and_no_answer(
    debug_headers: Process, service: str
) -> None:
    answer = get(debug_headers, service)
    assert answer.status == 200
    assert answer.body == b"GET /x"  # the instance's own body, not one the ID carried
    assert answer.headers.get_all("Set-Cookie") is None
    named = answer.headers["X-Upstream-Instance"]
    assert "\r" not in named and "\n" not in named and named.startswith(f"{service}-1%0D%0A")


def test_an_instance_id_outside_latin_1_is_named_percent_encoded_instead_of_a_500(
    debug_headers: Process,
) -> None:
    answer = get(debug_headers, "cyrillic")
    assert answer.status == 200
    assert answer.headers["X-Upstream-Instance"] == (
        "%D1%8D%D0%BA%D0%B7%D0%B5%D0%BC%D0%BF%D0%BB%D1%8F%D1%80-1"
    )


def test_an_instance_id_with_a_newline_cannot_forge_a_text_log_line(text_log: Process) -> None:
    assert get(text_log, "forger").status == 200

    def logged() -> list[str] | None:
        lines = text_log.log_path.read_text(errors="replace").split("\n")
        return lines if any("FORGED" in line for line in lines) else None

    lines = wait_for(logged, 10, "the access line of the request")
    assert not [line for line in lines if line.startswith("2030-01-01")]
    (access,) = [line for line in lines if "FORGED" in line]
    assert "gateway.access:" in access and r"upstream=forger-1\n2030-01-01" in access
