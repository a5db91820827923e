"""One OpenTelemetry span per proxied request, gathered on the event loop and sent in batches.

Only built when ``OTEL_TRACES_EXPORTER=otlp`` (then OpenTelemetry is imported, in
:mod:`discovery.otlp`); otherwise the proxy holds None and pays one attribute test a request.
On the hot path a request adds one tuple to a list; once a second :meth:`SpanBuffer.flush`
turns the tuples into spans (wall-clock times, attributes) and queues them for the SDK's
batch processor, whose own thread sends them. The list is bounded: past ``MAX_PENDING`` spans
a second, the rest of that second is dropped and counted, never grown without limit.
"""

from __future__ import annotations

import asyncio
import logging
import time

from discovery.tracing import ExportSettings, Hop, SpanRecord, SpanSink

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 1.0
MAX_PENDING = 20_000

# started, ended (loop time), trace, method, path, service, status, upstream, attempts
Pending = tuple[float, float, Hop, bytes, bytes, str, int, str, int]


class SpanBuffer:
    """The finished requests of one worker, waiting for the next flush."""

    def __init__(self, sink: SpanSink) -> None:
        self.sink = sink
        self.pending: list[Pending] = []
        self.dropped = 0
        self.scheduled = False

    def add(self, loop: asyncio.AbstractEventLoop, span: Pending) -> None:
        """Keep one finished request (a sampled one) for the next flush."""
        if len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self.pending.append(span)
        if not self.scheduled:
            self.scheduled = True
            loop.call_later(FLUSH_INTERVAL, self.flush, loop)

    def flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Turn what was kept into spans and queue them for export."""
        pending, self.pending = self.pending, []
        self.scheduled = False
        if self.dropped:
            log.warning("dropped %d spans: over %d a second", self.dropped, MAX_PENDING)
            self.dropped = 0
        offset = time.time() - loop.time()  # loop time (monotonic) to Unix time
        for started, ended, hop, method, path, service, status, upstream, attempts in pending:
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

    return SpanBuffer(otlp.install(settings, instance))
