"""What is recorded of each request once it is answered: metrics, the access log, the span.

A :class:`Record` gathers, as the request goes, what its answer does not say: the service it
was routed to, the last instance tried and how many were, and its trace. When the request
ends, :func:`finish` counts it (:mod:`gateway.metrics`, always), and writes the access-log
line and queues the OpenTelemetry span only if ``ACCESS_LOG`` or ``OTEL_TRACES_EXPORTER``
turn them on, so they cost nothing otherwise.
"""

from __future__ import annotations

import asyncio
import logging

from discovery import tracing
from gateway import metrics
from gateway.reply import Reply
from gateway.span_export import SpanBuffer

access_log = logging.getLogger("gateway.access")


class Record:
    """What the log and the span say of one request besides its answer."""

    __slots__ = ("attempts", "flags", "label", "parent_id", "span_id", "trace_id", "upstream")

    def __init__(self, trace_id: str, span_id: str, flags: str, parent_id: str) -> None:
        # This hop's span of the trace: the IDs and flags of the traceparent sent upstream,
        # and the caller's span ("" when this hop started the trace).
        self.trace_id, self.span_id, self.flags = trace_id, span_id, flags
        self.parent_id = parent_id
        self.label = metrics.UNROUTED  # the routed service, once a route matched
        self.upstream = "-"  # the last instance tried
        self.attempts = 0

    def hop(self) -> tracing.Hop:
        """This hop's trace as :mod:`discovery.tracing` has it (for the span exporter)."""
        return tracing.Hop(
            tracing.TraceParent(self.trace_id, self.span_id, self.flags), self.parent_id
        )


def finish(
    record: Record,
    reply: Reply,
    ended: float,
    access: bool,
    spans: SpanBuffer | None,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Count the answered request; log it and queue its span when those are on."""
    req = reply.request
    seconds = ended - req.started
    metrics.observe(record.label, reply.status, seconds)
    if access:
        _log(record, reply, seconds)
    if spans is not None and record.flags == tracing.SAMPLED:
        spans.add(
            loop,
            (
                req.started, ended, record.hop(), req.method, req.target.partition(b"?")[0],
                record.label, reply.status, record.upstream, record.attempts,
            ),
        )  # fmt: skip


def _log(record: Record, reply: Reply, seconds: float) -> None:
    """One access-log line: readable as text, and with every field as its own JSON key."""
    req = reply.request
    method = req.method.decode("latin-1")
    path = req.target.partition(b"?")[0].decode("latin-1")  # no query: it may hold secrets
    ms = round(seconds * 1000, 2)
    access_log.info(
        '%s "%s %s" %d upstream=%s attempts=%d bytes=%d %.1fms',
        req.peer, method, path, reply.status, record.upstream, record.attempts, reply.sent, ms,
        extra={
            "request_id": req.request_id, "trace_id": record.trace_id,
            "client": req.peer, "method": method, "path": path, "status": reply.status,
            "service": record.label, "upstream": record.upstream, "attempts": record.attempts,
            "bytes": reply.sent, "duration_ms": ms,
        },
    )  # fmt: skip
