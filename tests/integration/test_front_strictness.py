"""The front end refuses what could smuggle or steer a request, checked over raw sockets.

Each framing attack carries a second request, ``GET /echo/smuggled``, that only a parser
disagreeing about where the first one ends would see. The attack must be refused (a JSON
400, or 501 for an unknown Transfer-Encoding, or a close without any answer), no 2xx may
come back on its connection, and the next client must get its own answer. Steering attempts
aim at ``spy``, a recording upstream that must never receive them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for
from tests.integration.hostile_upstream import HostileUpstream, plain
from tests.integration.rawhttp import Answer, NoAnswer, RawConnection, Reply, exchange, request

pytestmark = pytest.mark.integration
SMUGGLED = b"GET /echo/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n"
POST = b"POST /echo/x HTTP/1.1\r\nHost: gw\r\n"
GET = b"GET /echo/x HTTP/1.1\r\nHost: gw\r\n"
CHUNKED = b"3\r\nabc\r\n0\r\n\r\n"
TE = b"Transfer-Encoding: chunked\r\n\r\n"
# The JSON error codes of the front end's refusals (the brief's contract).
CODES = {400: "bad_request", 414: "uri_too_long", 431: "headers_too_large", 501: "not_implemented"}

FRAMING = [
    ("cl_and_te", POST + b"Content-Length: 5\r\n" + TE + b"0\r\n\r\n" + SMUGGLED, {400}),
    ("duplicate_cl", POST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc" + SMUGGLED, {400}),
    (
        "differing_cl",
        POST
        + b"Content-Length: 3\r\nContent-Length: %d\r\n\r\nabc" % (3 + len(SMUGGLED))
        + SMUGGLED,
        {400},
    ),
    ("cl_list", POST + b"Content-Length: 3, 3\r\n\r\nabc" + SMUGGLED, {400}),
    ("cl_plus", POST + b"Content-Length: +3\r\n\r\nabc" + SMUGGLED, {400}),
    (
        "te_chunked_identity",
        POST + b"Transfer-Encoding: chunked, identity\r\n\r\n" + CHUNKED + SMUGGLED,
        {400, 501},
    ),
    (
        "te_space_before_colon",
        POST + b"Transfer-Encoding : chunked\r\n\r\n" + CHUNKED + SMUGGLED,
        {400},
    ),
    ("te_xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n" + CHUNKED + SMUGGLED, {400, 501}),
    (
        "te_on_http10",
        b"POST /echo/x HTTP/1.0\r\nHost: gw\r\n" + TE + CHUNKED + SMUGGLED,
        {400},
    ),
    ("obs_fold", GET + b"X-Folded: a\r\n b\r\n\r\n" + SMUGGLED, {400}),
    ("bare_lf", b"GET /echo/x HTTP/1.1\nHost: gw\n\n" + SMUGGLED, {400}),
    ("bare_cr", GET + b"X-A: a\rb\r\n\r\n" + SMUGGLED, {400}),
    ("nul_in_header", GET + b"X-A: a\x00b\r\n\r\n" + SMUGGLED, {400}),
    ("chunk_size_zz", POST + TE + b"zz\r\nabc\r\n0\r\n\r\n" + SMUGGLED, {400}),
    ("chunk_size_negative", POST + TE + b"-3\r\nabc\r\n0\r\n\r\n" + SMUGGLED, {400}),
    (
        "chunk_size_overlong",
        POST + TE + b"1" + b"0" * 24 + b"3\r\nabc\r\n0\r\n\r\n" + SMUGGLED,
        {400},
    ),
    ("chunk_bad_terminator", POST + TE + b"3\r\nabcXX0\r\n\r\n" + SMUGGLED, {400}),
]


def _fields(count: int, size: int = 1) -> bytes:
    return b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * size) for i in range(count))


LIMITS = [
    ("header_of_64_kib", GET + b"X-Big: " + b"a" * 65536 + b"\r\n\r\n", 431),
    ("header_block_over_64_kib", GET + _fields(20, 4000) + b"\r\n", 431),
    ("101_header_fields", GET + _fields(100) + b"\r\n", 431),  # Host and 100 more
    (
        "request_line_over_8_kib",
        b"GET /echo/" + b"a" * 8200 + b" HTTP/1.1\r\nHost: gw\r\n\r\n",
        414,
    ),
]
WITHIN_LIMITS = [
    ("50_header_fields", GET + _fields(49) + b"\r\n"),
    ("header_block_of_32_kib", GET + _fields(8, 4000) + b"\r\n"),
    ("request_line_of_4000_bytes", b"GET /echo/" + b"a" * 3980 + b" HTTP/1.1\r\nHost: gw\r\n\r\n"),
]
# The path names echo (or no service); spy is named only by something that must not steer.
PATH_ONLY = [
    ("absolute_form_host", b"GET http://spy/echo/x HTTP/1.1\r\nHost: gw\r\n\r\n"),
    ("absolute_form_spy_path", b"GET http://gw/echo/../spy/x HTTP/1.1\r\nHost: gw\r\n\r\n"),
    ("foreign_host", b"GET /echo/x HTTP/1.1\r\nHost: spy\r\n\r\n"),
    ("dot_dot", b"GET /echo/../spy/x HTTP/1.1\r\nHost: gw\r\n\r\n"),
    ("encoded_dot_dot", b"GET /echo/%2e%2e/spy/x HTTP/1.1\r\nHost: gw\r\n\r\n"),
    ("encoded_dot_dot_upper", b"GET /echo/%2E%2E/spy/x HTTP/1.1\r\nHost: gw\r\n\r\n"),
    ("encoded_slash", b"GET /echo%2F..%2Fspy/x HTTP/1.1\r\nHost: gw\r\n\r\n"),
    ("encoded_slash_after_dots", b"GET /echo/..%2Fspy/x HTTP/1.1\r\nHost: gw\r\n\r\n"),
    ("double_slash", b"GET /echo//../spy/x HTTP/1.1\r\nHost: gw\r\n\r\n"),
]
REFUSED_METHODS = [
    ("connect_to_spy_port", b"CONNECT 127.0.0.1:{spy} HTTP/1.1\r\nHost: 127.0.0.1:{spy}\r\n\r\n"),
    ("connect_to_spy_name", b"CONNECT spy:80 HTTP/1.1\r\nHost: spy:80\r\n\r\n"),
    ("trace_to_spy", b"TRACE /spy/x HTTP/1.1\r\nHost: gw\r\n\r\n"),
]


@pytest.fixture(scope="module")
def spy(consul: ConsulDouble) -> Iterator[HostileUpstream]:
    with HostileUpstream(plain) as upstream:
        upstream.register(consul.addr, "spy")
        yield upstream


@pytest.fixture(scope="module")
def gateway(
    start_service: StartService,
    start_gateway: Callable[..., Process],
    consul: ConsulDouble,
    spy: HostileUpstream,
) -> Process:
    start_service("echo")
    wait_for(lambda: passing_ids(consul.addr, "echo"), 15, "a passing echo instance")
    gw = start_gateway(WEB_CONCURRENCY="1")
    wait_for(lambda: requests.get(f"{gw.url}/echo/ready", timeout=2).ok, 10, "a route to echo")
    wait_for(
        lambda: requests.get(f"{gw.url}/spy/ready", timeout=2).ok and spy.count("GET", "/ready"),
        10,
        "a route to spy",
    )
    return gw


def refused(reply: Reply, statuses: set[int]) -> bool:
    """A JSON error with one of *statuses* and its code, or a close without any answer."""
    if isinstance(reply, NoAnswer):
        return reply.reason == "closed"
    return reply.status in statuses and reply.error_code() == CODES[reply.status]


def echo_answer(reply: Reply, path: str) -> bool:
    """Whether *reply* is echo's 200 for *path* (as echo saw it, prefix removed)."""
    if not isinstance(reply, Answer) or reply.status != 200:
        return False
    seen = reply.json()
    return bool(seen["path"] == path and seen["instance"].startswith("echo-"))


def assert_next_client_served(gateway: Process, tag: str) -> None:
    reply = request(gateway.port, b"GET /echo/after-%s HTTP/1.1\r\nHost: gw\r\n\r\n" % tag.encode())
    assert echo_answer(reply, f"/after-{tag}"), reply


@pytest.mark.parametrize(
    ("data", "statuses"), [p[1:] for p in FRAMING], ids=[p[0] for p in FRAMING]
)
def test_framing_attack_is_refused_and_its_smuggled_request_is_never_answered(
    gateway: Process, data: bytes, statuses: set[int]
) -> None:
    replies = exchange(gateway.port, data, answers=3, timeout=5)
    first = replies[0]
    assert refused(first, statuses), first.body[:300] if isinstance(first, Answer) else first
    assert not [r for r in replies if isinstance(r, Answer) and r.status < 300], replies
    assert_next_client_served(gateway, "framing")


@pytest.mark.parametrize(("data", "status"), [p[1:] for p in LIMITS], ids=[p[0] for p in LIMITS])
def test_oversized_request_head_is_refused_with_its_status(
    gateway: Process, data: bytes, status: int
) -> None:
    reply = request(gateway.port, data)
    assert isinstance(reply, Answer), reply
    assert (reply.status, reply.error_code()) == (status, CODES[status]), reply.body[:300]


@pytest.mark.parametrize("data", [p[1] for p in WITHIN_LIMITS], ids=[p[0] for p in WITHIN_LIMITS])
def test_large_request_head_within_the_limits_is_served(gateway: Process, data: bytes) -> None:
    reply = request(gateway.port, data)
    assert isinstance(reply, Answer), reply
    assert reply.status == 200, (reply.status, reply.body[:200])


@pytest.mark.parametrize("data", [p[1] for p in PATH_ONLY], ids=[p[0] for p in PATH_ONLY])
def test_routing_follows_the_first_path_segment_only(
    gateway: Process, spy: HostileUpstream, data: bytes
) -> None:
    before = len(spy.received)
    reply = request(gateway.port, data)
    assert isinstance(reply, Answer), reply
    if reply.status == 200:
        assert reply.json()["instance"].startswith("echo-"), reply.body[:300]
    else:
        assert 400 <= reply.status < 500, (reply.status, reply.body[:200])
    assert_next_client_served(gateway, "steer")
    assert spy.received[before:] == []


@pytest.mark.parametrize(
    "template", [p[1] for p in REFUSED_METHODS], ids=[p[0] for p in REFUSED_METHODS]
)
def test_connect_and_trace_are_refused_and_never_forwarded(
    gateway: Process, spy: HostileUpstream, template: bytes
) -> None:
    before = len(spy.received)
    reply = request(gateway.port, template.replace(b"{spy}", b"%d" % spy.port))
    assert isinstance(reply, Answer), reply
    assert reply.status in {405, 501} and reply.error_code(), (reply.status, reply.body[:300])
    assert_next_client_served(gateway, "method")
    assert spy.received[before:] == []


def test_pipelined_requests_with_bodies_are_answered_in_order(gateway: Process) -> None:
    data = (
        b"POST /echo/p1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello"
        b"POST /echo/p2 HTTP/1.1\r\nHost: gw\r\n" + TE + b"4\r\nwxyz\r\n0\r\n\r\n"
        b"POST /echo/p3 HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc"
    )
    with RawConnection(gateway.port) as conn:
        conn.send(data)
        replies = [conn.read() for _ in range(3)]
    seen = [(r.json()["path"], r.json()["body_bytes"]) for r in replies if isinstance(r, Answer)]
    assert seen == [("/p1", 5), ("/p2", 4), ("/p3", 3)], replies
