"""Regressions from a review of the event-loop front end, over in-memory transports."""

from __future__ import annotations

import asyncio

from gateway.front import ClientConnection, FrontServer
from tests.unit.inmemory import (
    FakeTransport,
    Upstreams,
    answer,
    build,
    exchange,
    replies,
    run,
    service,
)

GET = b"GET /svc/a HTTP/1.1\r\nHost: gw\r\n\r\n"


async def settle(conn: ClientConnection, transport: FakeTransport, seconds: float = 1.0) -> None:
    """Let the gateway work until it is idle (or *seconds* pass)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        await asyncio.sleep(0.002)
        if transport.closed or (conn.current is None and not conn.queue):
            return


async def open_conn(front: FrontServer) -> tuple[ClientConnection, FakeTransport]:
    conn = front.protocol()
    transport = FakeTransport(conn)
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def test_a_pipelined_request_whose_body_comes_later_is_answered() -> None:
    ups = Upstreams({1: lambda req: answer(req.split(b"\r\n\r\n", 1)[1] or b"get")})
    _, front = build(ups, [service("svc", 1)], body_timeout=5.0)

    async def scenario() -> bytes:
        conn, transport = await open_conn(front)
        conn.data_received(GET + b"POST /svc/b HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n")
        await settle(conn, transport, 0.2)
        conn.data_received(b"0123456789")
        await settle(conn, transport)
        return bytes(transport.written)

    assert [r.body for r in replies(run(scenario()))] == [b"get", b"0123456789"]


def test_a_large_answer_in_one_read_is_relayed_whole() -> None:
    big = b"x" * 200_000
    ups = Upstreams({1: lambda req: answer(big)})
    _, front = build(ups, [service("svc", 1)])
    (out,) = replies(run(exchange(front, GET)).written)
    assert out.status == 200 and out.body == big


def test_an_endless_header_is_refused_with_431_before_it_is_buffered() -> None:
    ups = Upstreams({1: lambda req: answer()})
    _, front = build(ups, [service("svc", 1)])
    raw = b"GET /svc/a HTTP/1.1\r\nHost: gw\r\nX-Long: " + b"a" * 100_000
    transport = run(exchange(front, raw))
    (out,) = replies(transport.written)
    assert out.status == 431 and transport.closed and ups.received == []


def test_pipelined_requests_wait_while_the_client_is_not_reading() -> None:
    ups = Upstreams({1: lambda req: answer(b"ok")})
    _, front = build(ups, [service("svc", 1)])

    async def scenario() -> tuple[int, int, int]:
        conn, transport = await open_conn(front)
        conn.pause_writing()  # the client's socket buffer is full
        conn.data_received(GET * 3)
        await settle(conn, transport, 0.2)
        while_paused = len(ups.received)
        conn.resume_writing()
        await settle(conn, transport)
        return while_paused, len(ups.received), len(replies(transport.written))

    assert run(scenario()) == (1, 3, 3)


def test_an_http_1_0_keep_alive_client_is_told_and_an_open_ended_answer_closes() -> None:
    # An answer whose end is the connection's: relayed as it comes, so the client must be told.
    open_ended = b"HTTP/1.1 200 OK\r\n\r\nhi"
    ups = Upstreams({1: lambda req: answer(b"ok"), 2: lambda req: open_ended}, close_after={2})
    _, front = build(ups, [service("svc", 1), service("open", 2)])
    keep = b"GET /svc/ HTTP/1.0\r\nHost: gw\r\nConnection: keep-alive\r\n\r\n"
    kept = run(exchange(front, keep))
    assert b"Connection: keep-alive\r\n" in kept.written and not kept.closed
    ended = run(exchange(front, keep.replace(b"/svc/", b"/open/")))
    assert b"Connection: close\r\n" in ended.written and ended.closed
    assert ended.written.endswith(b"hi")


def test_no_pipelined_request_reaches_an_upstream_after_the_client_was_cut_off() -> None:
    broken = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 100_000
    ups = Upstreams({1: lambda req: broken if b"GET" in req[:4] else answer()}, close_after={1})
    _, front = build(ups, [service("svc", 1)])
    run(
        exchange(front, GET + b"POST /svc/orders HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n")
    )
    assert [r[:4] for _, r in ups.received] == [b"GET "]


def test_an_answer_before_the_body_was_read_says_the_connection_closes() -> None:
    _, front = build(Upstreams({}), [service("svc", 1)])
    raw = b"POST /nope/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000\r\n\r\n"
    transport = run(exchange(front, raw))
    (out,) = replies(transport.written)
    assert out.status == 404 and out.headers["connection"] == "close"


def test_a_fragment_in_the_target_is_refused() -> None:
    ups = Upstreams({1: lambda req: answer()})
    _, front = build(ups, [service("svc", 1)])
    (out,) = replies(
        run(exchange(front, b"GET /svc/admin#/x HTTP/1.1\r\nHost: gw\r\n\r\n")).written
    )
    assert out.status == 400 and ups.received == []


def test_an_http_1_0_client_gets_no_100_continue() -> None:
    ups = Upstreams({1: lambda req: answer()})
    _, front = build(ups, [service("svc", 1)])
    raw = b"POST /svc/ HTTP/1.0\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"
    assert b"100 Continue" not in run(exchange(front, raw)).written
