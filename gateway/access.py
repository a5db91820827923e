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

    __slots__ = ("attempts", "label", "trace", "upstream")

    def __init__(self, trace: tracing.Hop) -> None:
        self.trace = trace
        self.label = metrics.UNROUTED  # the routed service, once a route matched
        self.upstream = "-"  # the last instance tried
        self.attempts = 0


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
    if spans is not None and record.trace.outgoing.sampled:
        spans.add(
            loop,
            (
                req.started, ended, record.trace, req.method, req.target.partition(b"?")[0],
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
            "request_id": req.request_id, "trace_id": record.trace.outgoing.trace_id,
            "client": req.peer, "method": method, "path": path, "status": reply.status,
            "service": record.label, "upstream": record.upstream, "attempts": record.attempts,
            "bytes": reply.sent, "duration_ms": ms,
        },
    )  # fmt: skip
