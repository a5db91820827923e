"""The gateway's connection limit and idle keep-alive timeout, over raw sockets.

A worker past ``GATEWAY_MAX_CONNECTIONS`` answers 503 JSON and closes, and serves again once
connections leave; an idle keep-alive connection is closed after ``GATEWAY_KEEPALIVE_TIMEOUT``,
while a busy one is kept; a graceful stop lets a request in flight finish.
"""

from __future__ import annotations

import select
import signal
import socket
from collections.abc import Callable
from contextlib import ExitStack

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for
from tests.integration.rawhttp import Answer, RawConnection, request

pytestmark = pytest.mark.integration


def still_open(conn: RawConnection, seconds: float) -> bool:
    """Whether the gateway keeps the connection open (sends nothing, closes nothing) for
    *seconds*; peeks, so a later read still works."""
    ready, _, _ = select.select([conn.sock], [], [], seconds)
    return not ready or conn.sock.recv(1, socket.MSG_PEEK) != b""


GET = b"GET /echo/ HTTP/1.1\r\nHost: gw\r\n\r\n"
LIMIT = 5


@pytest.fixture(scope="module")
def gateway(
    start_service: StartService, start_gateway: Callable[..., Process], consul: ConsulDouble
) -> Process:
    start_service("echo")
    wait_for(lambda: passing_ids(consul.addr, "echo"), 15, "a passing echo instance")
    # One worker, so the limit is the gateway's; a short keep-alive timeout to watch it work.
    gw = start_gateway(
        WEB_CONCURRENCY="1",
        GATEWAY_MAX_CONNECTIONS=str(LIMIT),
        GATEWAY_KEEPALIVE_TIMEOUT="1s",
        GATEWAY_HEADER_TIMEOUT="30s",
    )
    wait_for(lambda: requests.get(f"{gw.url}/echo/", timeout=2).ok, 10, "a route to echo")
    return gw


def test_past_the_connection_limit_a_client_gets_503_json_and_then_service_resumes(
    gateway: Process,
) -> None:
    with ExitStack() as stack:
        held = [stack.enter_context(RawConnection(gateway.port)) for _ in range(LIMIT)]
        # Each held connection is known to the worker once it has answered on it.
        for conn in held:
            conn.send(b"GET /echo/ HTTP/1.1\r\nHost: gw\r\nX-Hold: 1\r\n")  # headers unfinished
        refused = wait_for(
            lambda: (reply := request(gateway.port, GET, timeout=5)).status == 503 and reply,
            10,
            "a refusal past the connection limit",
        )
        assert isinstance(refused, Answer)
        assert refused.error_code() == "too_many_connections"
        assert refused.headers["Connection"] == "close"
    # The held connections are gone: ordinary requests are served again.
    served = wait_for(
        lambda: (reply := request(gateway.port, GET, timeout=5)).status == 200 and reply,
        10,
        "service after the held connections closed",
    )
    assert isinstance(served, Answer)


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(gateway: Process) -> None:
    with RawConnection(gateway.port) as conn:
        conn.send(GET)
        first = conn.read()
        assert isinstance(first, Answer) and first.status == 200
        assert conn.at_eof(timeout=10), "the idle connection was never closed"


def test_a_connection_in_use_outlives_the_keep_alive_timeout(gateway: Process) -> None:
    with RawConnection(gateway.port) as conn:
        for _ in range(6):  # 3 s of requests, 0.5 s apart: never idle for a whole second
            conn.send(GET)
            reply = conn.read()
            assert isinstance(reply, Answer) and reply.status == 200
            assert still_open(conn, 0.5)


def test_a_graceful_stop_finishes_the_request_in_flight(
    start_gateway: Callable[..., Process], gateway: Process
) -> None:
    gw = start_gateway(WEB_CONCURRENCY="1")
    wait_for(lambda: requests.get(f"{gw.url}/echo/", timeout=5).ok, 15, "a route to echo")
    with RawConnection(gw.port) as conn:
        conn.send(b"POST /echo/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\nhello")
        assert still_open(conn, 0.5)  # the request is under way
        gw.signal(signal.SIGTERM)
        assert still_open(conn, 0.5)  # not cut off: the worker waits for it
        conn.send(b"world")
        reply = conn.read(timeout=15)
        assert isinstance(reply, Answer) and reply.status == 200
        assert reply.json()["body_bytes"] == 10
        assert reply.headers["Connection"] == "close"
    assert gw.wait_exit(20) == 0
