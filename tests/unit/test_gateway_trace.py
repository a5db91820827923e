"""The gateway's part in W3C Trace Context: which traceparent it continues, what it sends."""

from __future__ import annotations

import re
from typing import Any

import pytest

from discovery import tracing
from discovery.tracing import ExportSettings
from gateway.headers import classify, forwarded_tracestate, upstream_head
from gateway.proxy import _record
from gateway.request import Request
from tests.unit.inmemory import Upstreams, answer, build, exchange, replies, run, service

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01".encode()


def _request(raw: list[tuple[bytes, bytes]]) -> Request:
    """A parsed request with *raw* headers and a request ID of the client's own."""
    req = Request("198.51.100.7", 0.0)
    req.headers = classify(raw)
    return req


def test_trace_headers_are_read_not_forwarded_as_they_came() -> None:
    h = classify([(b"Host", b"h"), (b"traceparent", VALID), (b"TraceState", b"a=1")])
    h2 = classify([(b"Host", b"h"), (b"tracestate", b"a=1"), (b"tracestate", b"b=2")])
    assert (h.traceparent, h.traceparent_count, h.tracestate) == (VALID, 1, b"a=1")
    assert not [line for line in h.forward if line.lower().startswith(b"trace")]
    assert h2.tracestate == b"a=1,b=2"  # one list, in order (RFC 9110 field combination)


def test_a_single_valid_traceparent_is_continued() -> None:
    record = _record(_request([(b"Host", b"h"), (b"traceparent", VALID)]))
    assert (record.trace_id, record.parent_id) == (TRACE, SPAN)
    assert record.span_id != SPAN


def test_two_traceparent_fields_start_a_new_trace() -> None:
    record = _record(_request([(b"Host", b"h"), (b"traceparent", VALID), (b"traceparent", VALID)]))
    assert record.parent_id == "" and record.trace_id != TRACE


def test_the_trace_line_goes_upstream_after_the_request_id() -> None:
    head = upstream_head(
        b"GET", b"/x", classify([(b"Host", b"h")]), "p", 0, b"/e", "rid", 0, b"traceparent: t"
    )
    lines = head.split(b"\r\n")
    assert lines.index(b"traceparent: t") == lines.index(b"X-Request-ID: rid") + 1


def test_a_tracestate_over_the_w3c_limits_is_cut_by_whole_members() -> None:
    fields = [(b"tracestate", b"k%d=v" % i) for i in range(40)]
    h = classify([(b"Host", b"h"), *fields])
    assert forwarded_tracestate(h.tracestate) == b",".join(b"k%d=v" % i for i in range(32))
    huge = classify(
        [(b"Host", b"h"), (b"tracestate", b"a=" + b"x" * 9000), (b"tracestate", b"b=1")]
    )
    assert forwarded_tracestate(huge.tracestate) == b"b=1"  # 9 KiB: an upstream's 400
    assert forwarded_tracestate(b"a=1, b=2") == b"a=1, b=2"  # within the limits: untouched


def test_a_tracestate_is_not_forwarded_with_a_new_trace() -> None:
    head = sent_upstream(b"traceparent: garbage", b"tracestate: a=1")
    assert b"tracestate" not in head.lower()


def test_without_a_traceparent_nothing_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(value: str | None) -> None:
        raise AssertionError(f"parsed {value!r}")

    monkeypatch.setattr(tracing, "parse", refuse)
    record = _record(_request([(b"Host", b"h")]))
    assert record.parent_id == "" and record.flags == tracing.SAMPLED


def sent_upstream(*headers: bytes, **settings: Any) -> bytes:
    """The request head the gateway sends upstream for a GET with *headers*."""
    ups = Upstreams({9001: lambda data: answer()})
    _, front = build(ups, [service("catalog", 9001)], **settings)
    raw = b"GET /catalog/x HTTP/1.1\r\nHost: h\r\n" + b"".join(h + b"\r\n" for h in headers)
    (reply,) = replies(run(exchange(front, raw + b"\r\n")).written)
    assert reply.status == 200
    ((_, head),) = ups.received
    return head


def test_the_gateway_forwards_only_the_sampled_flag_and_a_bounded_tracestate() -> None:
    state = b"tracestate: " + b",".join(b"k%d=v" % i for i in range(33))
    head = sent_upstream(b"traceparent: 00-%s-%s-09" % (TRACE.encode(), SPAN.encode()), state)
    (line,) = [x for x in head.split(b"\r\n") if x.startswith(b"traceparent: ")]
    assert line.startswith(b"traceparent: 00-" + TRACE.encode()) and line.endswith(b"-01")
    assert b"\r\ntracestate: " + b",".join(b"k%d=v" % i for i in range(32)) + b"\r\n" in head


def test_the_gateway_starts_traces_as_its_sampler_says() -> None:
    off = ExportSettings(sampler=tracing.Sampler(0.0, parent_based=True))
    new = sent_upstream(otel=off)
    assert re.search(rb"\r\ntraceparent: 00-[0-9a-f]{32}-[0-9a-f]{16}-00\r\n", new)
    continued = sent_upstream(b"traceparent: " + VALID, otel=off)  # parent-based: kept
    assert b"-" + TRACE.encode() + b"-" in continued and b"-01\r\n" in continued


def test_a_new_trace_takes_the_request_id_the_gateway_drew() -> None:
    req = _request([(b"Host", b"h")])
    req.request_id, req.minted_id = "0af7651916cd43dd8448eb211c80319c", True
    record = _record(req)
    assert record.trace_id == req.request_id and len(record.span_id) == 16
    client_given = _request([(b"Host", b"h")])
    client_given.request_id = "0af7651916cd43dd8448eb211c80319c"  # sent by the client
    assert _record(client_given).trace_id != client_given.request_id
