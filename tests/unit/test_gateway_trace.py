"""The gateway's part in W3C Trace Context: which traceparent it continues, what it sends."""

from __future__ import annotations

from gateway.headers import classify, upstream_head
from gateway.proxy import _hop

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01".encode()


def test_trace_headers_are_read_not_forwarded_as_they_came() -> None:
    h = classify([(b"Host", b"h"), (b"traceparent", VALID), (b"TraceState", b"a=1")])
    h2 = classify([(b"Host", b"h"), (b"tracestate", b"a=1"), (b"tracestate", b"b=2")])
    assert (h.traceparent, h.traceparent_count, h.tracestate) == (VALID, 1, b"a=1")
    assert not [line for line in h.forward if line.lower().startswith(b"trace")]
    assert h2.tracestate == b"a=1,b=2"  # one list, in order (RFC 9110 field combination)


def test_a_single_valid_traceparent_is_continued() -> None:
    hop = _hop(classify([(b"Host", b"h"), (b"traceparent", VALID)]))
    assert (hop.outgoing.trace_id, hop.parent_id) == (TRACE, SPAN)
    assert hop.outgoing.parent_id != SPAN


def test_two_traceparent_fields_start_a_new_trace() -> None:
    hop = _hop(classify([(b"Host", b"h"), (b"traceparent", VALID), (b"traceparent", VALID)]))
    assert hop.parent_id == "" and hop.outgoing.trace_id != TRACE


def test_the_trace_line_goes_upstream_after_the_request_id() -> None:
    head = upstream_head(
        b"GET", b"/x", classify([(b"Host", b"h")]), "p", 0, b"/e", "rid", 0, b"traceparent: t"
    )
    lines = head.split(b"\r\n")
    assert lines.index(b"traceparent: t") == lines.index(b"X-Request-ID: rid") + 1
