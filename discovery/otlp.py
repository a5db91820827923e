"""OpenTelemetry export of finished spans over OTLP/HTTP, with the OpenTelemetry SDK.

Imported only when ``OTEL_TRACES_EXPORTER=otlp`` (see :class:`discovery.tracing.ExportSettings`),
so a process without it never loads OpenTelemetry. Spans are made by this project's own code
(:mod:`discovery.tracing`, the gateway's proxy), with its own IDs; this module turns each
:class:`~discovery.tracing.SpanRecord` into the SDK's ``ReadableSpan`` and hands it to a
``BatchSpanProcessor``, whose thread batches and sends them, so no request waits on the network.
"""

from __future__ import annotations

import atexit
import logging
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from discovery import tracing
from discovery.tracing import ExportSettings, SpanRecord

log = logging.getLogger(__name__)
_KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT}
_SCOPE = InstrumentationScope("flask-consul-mesh")
_OK, _ERROR = Status(StatusCode.UNSET), Status(StatusCode.ERROR)


class OtlpSink:
    """Queues spans for a ``BatchSpanProcessor`` with an OTLP/HTTP exporter."""

    def __init__(self, settings: ExportSettings, instance: str) -> None:
        self.resource = Resource.create(
            {"service.name": settings.service_name, "service.instance.id": instance}
        )
        exporter = OTLPSpanExporter(endpoint=settings.endpoint)
        # The queue size the gateway bounds its own buffer by (the SDK would read the same
        # OTEL_BSP_MAX_QUEUE_SIZE; passed here so both sides use the one parsed value).
        self.processor = BatchSpanProcessor(exporter, max_queue_size=settings.queue_size)

    def record(self, span: SpanRecord) -> None:
        """Queue one span (the processor drops spans beyond its queue, never blocks)."""
        sampled = TraceFlags(TraceFlags.SAMPLED)
        context = SpanContext(int(span.trace_id, 16), int(span.span_id, 16), False, sampled)
        parent = None
        if span.parent_id:
            parent = SpanContext(int(span.trace_id, 16), int(span.parent_id, 16), True, sampled)
        self.processor.on_end(
            ReadableSpan(
                span.name,
                context=context,
                parent=parent,
                resource=self.resource,
                attributes=dict(span.attributes),
                kind=_KINDS[span.kind],
                status=_ERROR if span.error else _OK,
                start_time=span.start_ns,
                end_time=span.end_ns,
                instrumentation_scope=_SCOPE,
            )
        )

    def shutdown(self) -> None:
        """Send what is queued, then stop the processor's thread."""
        self.processor.shutdown()  # type: ignore[no-untyped-call]


def install(settings: ExportSettings, instance: str) -> OtlpSink:
    """Make spans of this process go to the OTLP endpoint; flushed at exit."""
    sink = OtlpSink(settings, instance)
    tracing.SINK[:] = [sink]
    atexit.register(sink.shutdown)
    log.info("exporting spans over OTLP/HTTP to %s", origin(settings.endpoint))
    return sink


def origin(url: str) -> str:
    """``scheme://host:port`` of *url*: what a log may show (no ``user:pass@``, path or query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
