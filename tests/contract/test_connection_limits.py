"""Connections and blocking queries cost the server nothing once their clients are gone.

Consul limits the HTTP connections one client address may hold (``limits.
http_max_conns_per_client``, 200 by default, agent/config/default.go): one more is answered
429 with go-connlimit's text and closed. And it cancels a blocking query whose client
disconnects (the request's context). The registry, which spends a thread per connection, does
both; the tests watch its threads come back down. Each test connects from a loopback address
of its own (127.x.y.z), so that the limit counts only its connections.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from registry.launcher import ConsulDouble

from .conftest import ConsulTarget
from .helpers import Api, wait_for

pytestmark = pytest.mark.contract

#: Consul's default ``limits.http_max_conns_per_client``, and the registry's.
LIMIT = 200
DEADLINE = 30.0
TOO_MANY = b"Your IP is issuing too many concurrent connections, please rate limit your calls\n"


@pytest.fixture
def source() -> str:
    """A loopback address no other test connects from."""
    return f"127.{random.randint(64, 250)}.{random.randint(0, 255)}.{random.randint(2, 250)}"


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Sockets the test opens; all closed after it."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def _connect(addr: str, source: str) -> socket.socket:
    parts = urlsplit(addr)
    sock = socket.create_connection(
        (parts.hostname or "127.0.0.1", parts.port or 8500),
        timeout=DEADLINE,
        source_address=(source, 0),
    )
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _ok(addr: str, source: str) -> bool:
    """True when a request from ``source`` is served (not refused)."""
    with _connect(addr, source) as sock:
        sock.sendall(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _answer(sock).startswith(b"HTTP/1.1 200")


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])


def _blocking_request(api: Api) -> bytes:
    index = api.index("/v1/health/service/consul")
    target = f"/v1/health/service/consul?index={index}&wait=10m"
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def test_one_connection_over_the_per_client_limit_is_answered_429_and_closed(
    consul_target: ConsulTarget, api: Api, source: str, sockets: list[socket.socket]
) -> None:
    request = _blocking_request(api)
    for _ in range(LIMIT):
        sockets.append(_connect(consul_target.addr, source))
        sockets[-1].sendall(request)
    with _connect(consul_target.addr, source) as extra:
        answer = _answer(extra)
    assert answer.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert answer.endswith(b"\r\n\r\n" + TOO_MANY)
    # Another address is not affected, and the address is served again once it closes some.
    assert _ok(consul_target.addr, "127.0.0.1")
    for sock in sockets[:10]:
        sock.close()
    wait_for(lambda: _ok(consul_target.addr, source), DEADLINE, "a connection to be admitted again")


def test_blocking_queries_whose_clients_left_free_their_threads(
    fresh_double: ConsulDouble, source: str, sockets: list[socket.socket]
) -> None:
    # The registry's own workings (a thread per connection): a fresh process, so that no other
    # test's connections or check runners move the count.
    with Api(fresh_double.addr) as api:
        request = _blocking_request(api)
    before = _threads(fresh_double.pid)
    for _ in range(LIMIT + 50):
        sockets.append(_connect(fresh_double.addr, source))
        sockets[-1].sendall(request)
    wait_for(
        lambda: _threads(fresh_double.pid) >= LIMIT,
        DEADLINE,
        f"{LIMIT} blocking queries to hold a thread each",
    )
    for sock in sockets:
        sock.close()
    wait_for(
        lambda: _threads(fresh_double.pid) <= before,
        DEADLINE,
        f"the threads of the queries whose clients left to end (were {before} before them)",
    )
    assert _ok(fresh_double.addr, source)
