"""What a careless or hostile client cannot do to the registry (registry-only but the first).

Consul is a Go server: its regular expressions are RE2 (linear time), its goroutines do not
run out of stack on a deeply nested filter, and net/http bounds its connections. The registry
is a Python program, so it refuses what it cannot serve safely, with a status that blames the
client: a filter too long or too deep (400), a body over 1 MiB (413), a body it cannot frame
(400); it drops a client that stalls, keeps tokens out of its log, and notes a client that
hung up as a debug line, not a traceback.
"""

from __future__ import annotations

import http.client
import socket
import struct
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from registry.launcher import RegistryProcess, run_registry

from .conftest import ConsulTarget
from .helpers import Api, wait_for

pytestmark = pytest.mark.contract

DEADLINE = 15.0
EVALUATOR = "Failed to create boolean expression evaluator"


@pytest.fixture
def registry_only(consul_target: ConsulTarget) -> None:
    """Skip against a real Consul, which has no such limits."""
    if not consul_target.is_double:
        pytest.skip("registry-only behaviour: Consul, a Go server, has other limits")


@pytest.fixture
def quick_registry(registry_only: None) -> Iterator[RegistryProcess]:
    """A registry of the test's own that drops a stalled client after 500 ms, logging debug."""
    with run_registry(None, "--test-read-timeout", "500ms", "--log-level", "debug") as registry:
        yield registry


def _connect(addr: str) -> socket.socket:
    parts = urlsplit(addr)
    return socket.create_connection((parts.hostname or "", parts.port or 80), timeout=DEADLINE)


def _send_raw(addr: str, raw: bytes) -> bytes:
    """Send ``raw`` and read until the registry closes the connection."""
    with _connect(addr) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _reset(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send a TCP RST: the client vanishes.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_backtracking_pattern_answers_at_once(api: Api, name: str, registered: list[str]) -> None:
    # Python's re needs 2**40 steps for this pattern on this ID; RE2, as in Consul, a few.
    service_id = f"{name}-{'a' * 40}"
    registered.append(service_id)
    body = {"Name": name, "ID": service_id}
    assert api.put("/v1/agent/service/register", json=body).status_code == 200
    url = f"{api.addr}/v1/health/service/{name}"
    for pattern, expected in ((r"^(.|.)*!$", []), (r"^(.|.)*a$", [service_id])):
        params = {"filter": f'Service.ID matches "{pattern}"'}
        response = api.session.get(url, params=params, timeout=DEADLINE)
        assert response.status_code == 200, response.text
        assert [entry["Service"]["ID"] for entry in response.json()] == expected


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ('Service.ID == "' + "x" * 5000 + '"', "at most 4096"),
        ('Service.ID matches "' + "a" * 2000 + '"', "at most 1024"),
        ("not " * 1000 + 'Service.ID == "x"', "nests too deeply"),
        ("not " * 1200 + 'Service.ID == "x"', "at most 4096"),
        (" and ".join(['Service.ID != "x"'] * 1500), "at most 4096"),
        (" and ".join(['Service.ID != "x"'] * 100), "100 levels deep"),
        ('(Service.ID == "x" and ' * 70 + 'Service.ID == "x"' + ")" * 70, "71 levels deep"),
    ],
    ids=[
        "long",
        "long-pattern",
        "deep-not",
        "long-deep-not",
        "long-and-chain",
        "and-chain",
        "deep-parentheses",
    ],
)
def test_a_filter_too_long_or_too_deep_is_a_400_naming_filter(
    api: Api, registry_only: None, expression: str, says: str
) -> None:
    response = api.get("/v1/health/service/web", filter=expression)
    assert response.status_code == 400, response.text[:300]
    assert response.text.startswith("Invalid query parameter filter")
    assert EVALUATOR in response.text
    assert says in response.text


@pytest.mark.parametrize(
    ("headers", "body", "status", "says"),
    [
        (b"Content-Length: 2097152\r\n", b"", 413, b"too large, max size: 1048576 bytes"),
        (b"Transfer-Encoding: chunked\r\n", b"200000\r\n", 413, b"too large"),
        (b"Content-Length: abc\r\n", b"", 400, b"Invalid Content-Length"),
        (b"Content-Length: -5\r\n", b"", 400, b"Invalid Content-Length"),
        (b"Transfer-Encoding: chunked\r\n", b"zz\r\n", 400, b"Invalid chunk size"),
        (b"Transfer-Encoding: chunked\r\n", b"1_0\r\n", 400, b"Invalid chunk size"),
        (b"Transfer-Encoding: gzip\r\n", b"", 501, b"Unsupported transfer encoding"),
    ],
    ids=[
        "length-over-1-MiB",
        "chunk-over-1-MiB",
        "length-text",
        "length-negative",
        "chunk-size-text",
        "chunk-size-underscore",
        "gzip-coding",
    ],
)
def test_a_body_too_large_or_badly_framed_is_answered_then_the_connection_closes(
    consul_target_addr: str,
    registry_only: None,
    headers: bytes,
    body: bytes,
    status: int,
    says: bytes,
) -> None:
    request = b"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    answer = _send_raw(consul_target_addr, request + body)
    head, _, text = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:300]
    assert b"\r\nConnection: close" in head
    assert says in text


def test_a_chunked_registration_within_the_limit_is_served(
    api: Api, consul_target_addr: str, name: str, registered: list[str]
) -> None:
    registered.append(name)
    payload = b'{"Name": "%s", "Meta": {"pad": "%s"}}' % (name.encode(), b"p" * 500)
    halves = (payload[:40], payload[40:])
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in halves)
    request = (
        b"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    )
    assert _send_raw(consul_target_addr, request).startswith(b"HTTP/1.1 200 ")
    assert api.get(f"/v1/agent/service/{name}").json()["Meta"]["pad"] == "p" * 500


def test_a_client_that_stalls_is_dropped(quick_registry: RegistryProcess) -> None:
    # Half a request line, then nothing: the registry closes the connection, freeing its thread.
    with _connect(quick_registry.addr) as sock:
        sock.sendall(b"GET /v1/agent/self HT")
        assert sock.recv(65536) == b""
    # A body that stops short of its Content-Length: 408, then closed.
    head = b"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    answer = _send_raw(quick_registry.addr, head + b'{"N')
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]


def test_a_blocking_query_outlasts_the_read_timeout(quick_registry: RegistryProcess) -> None:
    # The socket timeout bounds reads and writes, not the wait: 2 s is four read timeouts.
    with Api(quick_registry.addr) as api:
        index = api.index("/v1/catalog/services")
        started = api.get("/v1/catalog/services", index=index, wait="2s")
        assert started.status_code == 200
        assert int(started.headers["X-Consul-Index"]) == index
        assert "Traceback" not in quick_registry.read_log()


def test_tokens_never_reach_the_log(quick_registry: RegistryProcess) -> None:
    secret = uuid.uuid4().hex
    parts = urlsplit(quick_registry.addr)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=DEADLINE)
    try:
        # Escaped in the URL: the log must not hold the raw text nor the decoded one.
        for target in (
            f"/v1/agent/services?token={secret[:8]}%2D{secret[8:]}&pretty",
            f"/v1/agent/checks?%74oken={secret}",
        ):
            connection.request("GET", target, headers={"X-Consul-Token": secret})
            assert connection.getresponse().read()
            connection.request("GET", target, headers={"Authorization": f"Bearer {secret}"})
            assert connection.getresponse().read()
    finally:
        connection.close()

    def logged() -> str | None:
        log = quick_registry.read_log()
        return log if log.count("token=<hidden>") >= 4 else None

    log = wait_for(logged, DEADLINE, "the four requests in the registry's log")
    assert secret[:8] not in log and secret[8:] not in log
    assert "url=/v1/agent/services?token=<hidden>&pretty " in log


def test_a_client_that_hangs_up_is_a_debug_line_not_a_traceback(
    quick_registry: RegistryProcess,
) -> None:
    with Api(quick_registry.addr) as api:
        index = api.index("/v1/catalog/services")
    # One client vanishes between two requests on a kept-alive connection, another in the
    # middle of a blocking query, as watchers do when `make run` stops them.
    idle = _connect(quick_registry.addr)
    idle.sendall(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200 ")
    _reset(idle)
    waiting = _connect(quick_registry.addr)
    query = f"GET /v1/catalog/services?index={index}&wait=300ms HTTP/1.1\r\nHost: x\r\n\r\n"
    waiting.sendall(query.encode())
    _reset(waiting)

    def both_noted() -> str | None:
        # The query's reset may reach the registry before or after it reads the query, so
        # either line may note it.
        log = quick_registry.read_log()
        return log if log.count("ended early") + log.count("left before its answer") >= 2 else None

    log = wait_for(both_noted, DEADLINE, "both hang-ups noted in the registry's log")
    assert "Traceback" not in log
