"""One OpenTelemetry span per proxied request, gathered on the event loop and sent in batches.

Only built when ``OTEL_TRACES_EXPORTER=otlp`` (then OpenTelemetry is imported, in
:mod:`discovery.otlp`); otherwise the proxy holds None and pays one attribute test a request.
On the hot path a request adds one tuple to a list; a second later :meth:`SpanBuffer.flush`
turns the tuples into spans (wall-clock times, attributes) and queues them for the SDK's
batch processor, whose own thread sends them. The conversion runs ``SLICE`` spans per loop
callback (2 to 8 ms for 512 with the SDK, measured on a busy 2-core machine; all 20,000 at
once took 289 ms), the rest in the callbacks after it, so requests are served in between. The list holds at most the processor's queue (``OTEL_BSP_MAX_QUEUE_SIZE``,
2048 by default): more would only be dropped there. What is dropped here is counted and
logged once per flush, never per span.
"""

from __future__ import annotations

import asyncio
import logging
import time

from discovery.tracing import ExportSettings, Hop, SpanRecord, SpanSink

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 1.0
SLICE = 512  # spans converted per loop callback; the SDK's default export batch as well

# started, ended (loop time), trace, method, path, service, status, upstream, attempts
Pending = tuple[float, float, Hop, bytes, bytes, str, int, str, int]


class SpanBuffer:
    """The finished requests of one worker, waiting for the next flush."""

    def __init__(self, sink: SpanSink, limit: int) -> None:
        self.sink = sink
        self.limit = limit  # the batch processor's queue size
        self.pending: list[Pending] = []
        self.dropped = 0
        self.scheduled = False

    def add(self, loop: asyncio.AbstractEventLoop, span: Pending) -> None:
        """Keep one finished request (a sampled one) for the next flush."""
        if len(self.pending) >= self.limit:
            self.dropped += 1
            return
        self.pending.append(span)
        if not self.scheduled:
            self.scheduled = True
            loop.call_later(FLUSH_INTERVAL, self.flush, loop)

    def flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Report what was dropped since the last flush, then start queueing spans."""
        if self.dropped:
            log.warning(
                "dropped %d spans: more than %d waiting for export (OTEL_BSP_MAX_QUEUE_SIZE)",
                self.dropped,
                self.limit,
            )
            self.dropped = 0
        self.export_slice(loop)

    def export_slice(self, loop: asyncio.AbstractEventLoop) -> None:
        """Queue up to ``SLICE`` spans for export; the rest on a later turn of the loop."""
        batch = self.pending[:SLICE]
        del self.pending[:SLICE]
        if self.pending:
            loop.call_soon(self.export_slice, loop)
        else:
            self.scheduled = False
        offset = time.time() - loop.time()  # loop time (monotonic) to Unix time
        for started, ended, hop, method, path, service, status, upstream, attempts in batch:
            out = hop.outgoing
            self.sink.record(
                SpanRecord(
                    f"{method.decode('latin-1')} /{service}",
                    "server",
                    out.trace_id,
                    out.parent_id,
                    hop.parent_id,
                    int((started + offset) * 1e9),
                    int((ended + offset) * 1e9),
                    {
                        "http.request.method": method.decode("latin-1"),
                        "url.path": path.decode("latin-1"),
                        "http.response.status_code": status,
                        "gateway.service": service,
                        "gateway.upstream": upstream,
                        "gateway.attempts": attempts,
                    },
                    status >= 500,
                )
            )


def make_buffer(settings: ExportSettings, instance: str) -> SpanBuffer | None:
    """A span buffer exporting over OTLP, or None when export is off (nothing imported)."""
    if not settings.enabled:
        return None
    from discovery import otlp  # OpenTelemetry is loaded only when export is on

    return SpanBuffer(otlp.install(settings, instance), settings.queue_size)
