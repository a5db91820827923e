"""The proxy core over in-memory transports: framing, retries, ejection and relaying."""

from __future__ import annotations

import json
import time

import pytest

from tests.unit.inmemory import (
    Upstreams,
    answer,
    build,
    exchange,
    exchanges,
    replies,
    run,
    service,
)

GET = b"GET /svc/items?x=1 HTTP/1.1\r\nHost: gw\r\n\r\n"


def post(body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return b"POST /svc/items HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


def test_a_request_is_forwarded_with_the_prefix_stripped_and_answered() -> None:
    ups = Upstreams({1: lambda req: answer(b"hi")})
    _, front = build(ups, [service("svc", 1)])
    out = replies(run(exchange(front, GET)).written)
    assert [(r.status, r.body) for r in out] == [(200, b"hi")]
    _, sent = ups.received[0]
    assert sent.startswith(b"GET /items?x=1 HTTP/1.1\r\nHost: gw\r\n")
    assert b"X-Forwarded-Prefix: /svc\r\n" in sent and b"X-Forwarded-For: 203.0.113.9" in sent
    assert out[0].headers["x-request-id"] in sent.decode()


def test_interim_1xx_answers_are_skipped_and_the_final_one_relayed() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + answer(b"final")
    ups = Upstreams({1: lambda req: early})
    _, front = build(ups, [service("svc", 1)])
    first, second = exchanges(front, GET, GET)
    assert [(r.status, r.body) for r in replies(first)] == [(200, b"final")]
    assert [(r.status, r.body) for r in replies(second)] == [(200, b"final")]


def test_surplus_bytes_after_an_answer_never_reach_the_next_client() -> None:
    ups = Upstreams({1: lambda req: answer(b"one") + answer(b"SMUGGLED")})
    _, front = build(ups, [service("svc", 1)])
    _, second = exchanges(front, GET, GET)
    assert [r.body for r in replies(second)] == [b"one"]
    assert ups.connections == 2  # the first connection was not reused


@pytest.mark.parametrize(
    "bad",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ],
)
def test_an_answer_with_bad_framing_is_a_502(bad: bytes) -> None:
    ups = Upstreams({1: lambda req: bad})
    _, front = build(ups, [service("svc", 1)])
    (out,) = replies(run(exchange(front, GET)).written)
    assert out.status == 502 and json.loads(out.body)["error"] == "upstream_bad_response"


def test_a_refused_connection_is_retried_on_another_instance_for_any_method() -> None:
    ups = Upstreams({1: lambda req: answer(b"one"), 2: lambda req: answer(b"two")}, refused={1})
    proxy, front = build(ups, [service("svc", 1, 2)], balancer="round_robin")
    bodies = {r.body for out in exchanges(front, *[post()] * 4) for r in replies(out)}
    assert bodies == {b"two"}
    assert proxy.stats.is_ejected("svc-1", time.monotonic())  # refused: out at once
    assert all(port == 2 for port, _ in ups.received)


def test_a_503_is_retried_for_get_but_a_post_gets_the_answer_itself() -> None:
    ups = Upstreams(
        {1: lambda req: answer(b"down", "503 Service Unavailable"), 2: lambda req: answer(b"up")}
    )
    _, front = build(ups, [service("svc", 1, 2)], balancer="round_robin")
    outs = [replies(out)[0] for out in exchanges(front, *[post()] * 4, *[GET] * 4)]
    assert 503 in [r.status for r in outs[:4]]
    assert {(r.status, r.body) for r in outs[4:]} == {(200, b"up")}


def test_a_post_is_not_replayed_when_a_reused_connection_breaks() -> None:
    calls: list[bytes] = []

    def first_then_silent(req: bytes) -> bytes | None:
        calls.append(req)
        return answer(b"warm") if len(calls) == 1 else None

    ups = Upstreams({1: first_then_silent})
    _, front = build(ups, [service("svc", 1)])

    async def scenario() -> bytes:
        await exchange(front, GET)  # leaves a pooled connection
        ups.close_after.add(1)  # the instance reads the POST, then closes without an answer
        return bytes((await exchange(front, post())).written)

    (out,) = replies(run(scenario()))
    assert out.status == 502
    assert sum(1 for c in calls if c.startswith(b"POST")) == 1


def test_an_instance_that_never_answers_gives_504_within_the_try_timeout() -> None:
    ups = Upstreams({1: lambda req: None})
    _, front = build(ups, [service("svc", 1)], try_timeout=0.05)
    (out,) = replies(run(exchange(front, GET)).written)
    assert out.status == 504 and json.loads(out.body)["error"] == "upstream_timeout"


def test_error_bodies_name_the_problem_but_no_address() -> None:
    ups = Upstreams({1: lambda req: answer()}, refused={1})
    _, front = build(ups, [service("svc", 1)])
    (out,) = replies(run(exchange(front, GET)).written)
    assert out.status == 502
    assert "127.0.0.1" not in out.body.decode() and "Errno" not in out.body.decode()


def test_pipelined_requests_with_bodies_are_answered_in_order() -> None:
    ups = Upstreams({1: lambda req: answer(req.split(b"\r\n\r\n", 1)[1] or b"get")})
    _, front = build(ups, [service("svc", 1)])
    raw = post(b"first") + GET + post(b"third")
    assert [r.body for r in replies(run(exchange(front, raw)).written)] == [
        b"first",
        b"get",
        b"third",
    ]


def test_an_unknown_route_is_a_404_json_error() -> None:
    _, front = build(Upstreams({}), [service("svc", 1)])
    (out,) = replies(run(exchange(front, b"GET /nope/x HTTP/1.1\r\nHost: gw\r\n\r\n")).written)
    assert out.status == 404 and json.loads(out.body)["error"] == "unknown_service"


@pytest.mark.parametrize("path", [b"/svc/../other/x", b"/svc/%2e%2E/x", b"/svc/./x"])
def test_dot_segments_are_refused_before_routing(path: bytes) -> None:
    ups = Upstreams({1: lambda req: answer()})
    _, front = build(ups, [service("svc", 1)])
    (out,) = replies(
        run(exchange(front, b"GET " + path + b" HTTP/1.1\r\nHost: gw\r\n\r\n")).written
    )
    assert out.status == 400 and ups.received == []


def test_a_body_over_the_maximum_is_a_413_and_never_forwarded() -> None:
    ups = Upstreams({1: lambda req: answer()})
    _, front = build(ups, [service("svc", 1)], max_body_size=4)
    (out,) = replies(run(exchange(front, post(b"too long"))).written)
    assert out.status == 413 and ups.received == []


def test_head_keeps_the_upstream_length_and_sends_no_body() -> None:
    ups = Upstreams({1: lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n"})
    _, front = build(ups, [service("svc", 1)])
    written = bytes(run(exchange(front, b"HEAD /svc/ HTTP/1.1\r\nHost: gw\r\n\r\n")).written)
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 42\r\n" in written and written.endswith(b"\r\n\r\n")


def test_a_body_that_stops_arriving_is_a_504_within_the_try_timeout() -> None:
    ups = Upstreams({1: lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"})
    _, front = build(ups, [service("svc", 1)], try_timeout=0.05)
    (out,) = replies(run(exchange(front, GET)).written)
    assert out.status == 504 and json.loads(out.body)["error"] == "upstream_timeout"


@pytest.mark.parametrize(
    "codings",
    [
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_a_transfer_coding_besides_chunked_is_501_and_never_forwarded(codings: bytes) -> None:
    ups = Upstreams({1: lambda req: answer()})
    _, front = build(ups, [service("svc", 1)])
    raw = b"POST /svc/ HTTP/1.1\r\nHost: gw\r\n" + codings + b"\r\n3\r\nabc\r\n0\r\n\r\n"
    (out,) = replies(run(exchange(front, raw)).written)
    assert out.status == 501 and ups.received == []


def test_connection_close_wins_over_keep_alive_in_http_1_0() -> None:
    ups = Upstreams({1: lambda req: answer()})
    _, front = build(ups, [service("svc", 1)])
    raw = b"GET /svc/ HTTP/1.0\r\nHost: gw\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
    transport = run(exchange(front, raw + b"GET /svc/ HTTP/1.0\r\nHost: gw\r\n\r\n"))
    assert len(replies(transport.written)) == 1 and transport.closed


def test_an_answer_that_breaks_off_is_retried_for_get_but_not_for_post() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"
    ups = Upstreams({1: lambda req: cut, 2: lambda req: answer(b"whole")}, close_after={1})
    _, front = build(ups, [service("svc", 1, 2)], balancer="round_robin")
    outs = [replies(out)[0] for out in exchanges(front, *[GET] * 2, *[post()] * 2)]
    assert {(r.status, r.body) for r in outs[:2]} == {(200, b"whole")}
    assert {r.status for r in outs[2:]} == {200, 502}
