"""Chunk extensions and trailer fields are bounded on both sides, and trailers stay trailers.

Neither is body data, so no body limit sees them, and llhttp gathers a trailer field whole
before handing it over. A client or an instance that streams megabytes of them must be cut off
early, not buffered until its field ends (or until a timeout), while ordinary use of both
passes. Trailer fields are never merged into the headers on either side (RFC 9110 §6.5.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.harness import Process, wait_for
from tests.integration.hostile_upstream import (
    HostileUpstream,
    Script,
    endless_extension,
    endless_trailer,
    plain,
    with_trailer,
)
from tests.integration.rawhttp import Answer, NoAnswer, RawConnection, request, upload

pytestmark = pytest.mark.integration
SCRIPTS: dict[str, Script] = {
    "sink": plain,
    "trailer": with_trailer,
    "hugetrailer": endless_trailer,
    "hugeext": endless_extension,
}
CHUNKED_POST = b"POST /sink/upload HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
PIECE = b"a" * 65536
PIECES = 512  # 32 MiB, far past any limit; the sending stops at the reply


@pytest.fixture(scope="module")
def upstreams(consul: ConsulDouble) -> Iterator[dict[str, HostileUpstream]]:
    started: dict[str, HostileUpstream] = {}
    try:
        for name, script in SCRIPTS.items():
            started[name] = HostileUpstream(script)
            started[name].register(consul.addr, name)
        yield started
    finally:
        for upstream in started.values():
            upstream.close()


@pytest.fixture(scope="module")
def gateway(
    start_gateway: Callable[..., Process], upstreams: dict[str, HostileUpstream]
) -> Process:
    gw = start_gateway(
        WEB_CONCURRENCY="1",
        # Framing bytes never count as body progress: without a bound of its own, an endless
        # trailer or extension would end in a 408 after this.
        GATEWAY_BODY_TIMEOUT="3s",
        GATEWAY_EJECT_AFTER="1000",  # the hostile instances fail on purpose; keep them in
    )

    def routed() -> bool:
        body = requests.get(f"{gw.admin_url}/_gateway/routes", timeout=2).json()
        return {s["service"] for s in body["services"] if s["passing"]} >= set(SCRIPTS)

    wait_for(routed, 10, "routes to every upstream")
    return gw


def assert_refused_at_once(reply: object) -> None:
    """A 400 naming the framing, not a 408 after the body timeout, nor a forwarded request."""
    assert isinstance(reply, Answer), reply
    assert reply.status == 400, (reply.status, reply.body[:300])
    assert reply.error_code() == "bad_request", reply.body[:300]
    assert b"chunk extensions and trailer fields" in reply.body, reply.body[:300]


def test_trailer_fields_beyond_the_framing_limit_are_refused_before_they_are_buffered(
    gateway: Process, upstreams: dict[str, HostileUpstream]
) -> None:
    # The field never ends: buffered whole, it would only be answered by the body timeout.
    head = CHUNKED_POST + b"1\r\nx\r\n0\r\nX-Huge: "
    assert_refused_at_once(upload(gateway.port, head, PIECE, PIECES))
    assert upstreams["sink"].count("POST", "/upload") == 0


def test_chunk_extensions_beyond_the_framing_limit_are_refused(
    gateway: Process, upstreams: dict[str, HostileUpstream]
) -> None:
    head = CHUNKED_POST + b"1;ext="
    assert_refused_at_once(upload(gateway.port, head, PIECE, PIECES, b"\r\nx\r\n0\r\n\r\n"))
    assert upstreams["sink"].count("POST", "/upload") == 0


def test_one_byte_chunks_with_extensions_and_small_trailers_are_forwarded_without_the_trailers(
    gateway: Process, upstreams: dict[str, HostileUpstream]
) -> None:
    # Ordinary framing never meets the bound, however small the chunks: 200 KB of one-byte
    # chunks with an extension each is over 2 MB of framing.
    body = b"0123456789" * 20_000
    chunks = b"".join(b"1;n=v\r\n%c\r\n" % byte for byte in body)
    trailer = b"0\r\nX-Checksum: abc\r\nAuthorization: from-the-trailer\r\n\r\n"
    path = b"/sink/small-framing"
    raw = CHUNKED_POST.replace(b"/sink/upload", path) + chunks + trailer
    reply = request(gateway.port, raw, timeout=30)
    assert isinstance(reply, Answer) and reply.status == 200, reply
    (received,) = [r for r in upstreams["sink"].received if r.path == "/small-framing"]
    assert received.body == body
    names = {name.lower() for name, _ in received.headers}
    assert not names & {"x-checksum", "authorization"}, received.headers


def test_upstream_trailer_fields_never_become_response_headers(gateway: Process) -> None:
    for n in range(2):  # the second on the kept-alive connection, if the first was reused
        reply = request(gateway.port, b"GET /trailer/t-%d HTTP/1.1\r\nHost: gw\r\n\r\n" % n)
        assert isinstance(reply, Answer), reply
        assert (reply.status, reply.body) == (200, b"GET /t-%d" % n)
        assert reply.headers.get("Set-Cookie") is None, reply.headers
        assert reply.headers.get("X-Trailer-Field") is None, reply.headers


@pytest.mark.parametrize("service", ["hugetrailer", "hugeext"])
def test_an_upstream_answer_with_framing_beyond_the_limit_is_cut_off(
    gateway: Process, upstreams: dict[str, HostileUpstream], service: str
) -> None:
    # The head was relayed before the framing grew, so the client sees the answer cut short
    # (never a whole one), and the instance sees the gateway close before its 8 MiB ended.
    with RawConnection(gateway.port) as conn:
        conn.send(b"GET /%s/x HTTP/1.1\r\nHost: gw\r\n\r\n" % service.encode())
        reply = conn.read(timeout=20)
    assert isinstance(reply, NoAnswer), reply
    wait_for(lambda: upstreams[service].marked("cut"), 10, "the gateway to close on the instance")
