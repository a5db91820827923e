"""The gateway's span buffer: bounded by the export queue, converted in slices on the loop."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from discovery import tracing
from discovery.tracing import ExportSettings, SpanRecord
from gateway import span_export
from gateway.span_export import Pending, SpanBuffer


class Recorded:
    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []

    def record(self, span: SpanRecord) -> None:
        self.spans.append(span)


class ManualLoop:
    """The loop calls the buffer makes, run by hand: no time passes, nothing runs by itself."""

    def __init__(self) -> None:
        self.later: list[tuple[float, Callable[..., None], tuple[Any, ...]]] = []
        self.soon: list[tuple[Callable[..., None], tuple[Any, ...]]] = []

    def time(self) -> float:
        return 100.0

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        self.later.append((delay, callback, args))

    def call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        self.soon.append((callback, args))

    def run_timer(self) -> None:
        (_, callback, args), *self.later = self.later
        callback(*args)

    def run_one_soon(self) -> None:
        (callback, args), *self.soon = self.soon
        callback(*args)


def span(i: int) -> Pending:
    hop = tracing.start()
    return (1.0, 1.5, hop, b"GET", b"/catalog/items", "catalog", 200 + i % 2, "catalog-1", 1)


def test_the_buffer_keeps_at_most_the_export_queue_and_counts_the_rest() -> None:
    sink, loop = Recorded(), ManualLoop()
    buffer = SpanBuffer(sink, limit=2048)
    for i in range(3000):
        buffer.add(loop, span(i))  # type: ignore[arg-type]
    assert len(buffer.pending) == 2048 and buffer.dropped == 3000 - 2048
    assert len(loop.later) == 1  # one flush scheduled, not one per span


def test_a_flush_converts_one_slice_per_loop_callback(caplog: pytest.LogCaptureFixture) -> None:
    sink, loop = Recorded(), ManualLoop()
    buffer = SpanBuffer(sink, limit=2048)
    for i in range(2100):
        buffer.add(loop, span(i))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="gateway.span_export"):
        loop.run_timer()
        assert len(sink.spans) == span_export.SLICE  # the rest waits for later callbacks
        callbacks = 1
        while loop.soon:
            loop.run_one_soon()
            callbacks += 1
            assert len(sink.spans) <= callbacks * span_export.SLICE
    assert len(sink.spans) == 2048 and callbacks == 4
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "dropped 52 spans: more than 2048 waiting for export (OTEL_BSP_MAX_QUEUE_SIZE)"
    ]
    # Drained: the next span schedules the next flush, and nothing more is logged.
    buffer.add(loop, span(0))  # type: ignore[arg-type]
    assert len(loop.later) == 1 and buffer.dropped == 0


def test_spans_carry_the_request_and_its_trace() -> None:
    sink, loop = Recorded(), ManualLoop()
    buffer = SpanBuffer(sink, limit=10)
    pending = span(1)
    buffer.add(loop, pending)  # type: ignore[arg-type]
    loop.run_timer()
    (record,) = sink.spans
    hop = pending[2]
    assert (record.name, record.trace_id, record.span_id) == (
        "GET /catalog",
        hop.outgoing.trace_id,
        hop.outgoing.parent_id,
    )
    assert record.end_ns - record.start_ns == 500_000_000 and not record.error
    assert record.attributes["http.response.status_code"] == 201


def test_the_buffer_limit_is_the_batch_processors_queue_size() -> None:
    settings = ExportSettings.from_env(
        "gateway", {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_MAX_QUEUE_SIZE": "600"}
    )
    buffer = span_export.make_buffer(settings, "gateway-test")
    try:
        assert buffer is not None and buffer.limit == 600
        processor = buffer.sink.processor  # type: ignore[attr-defined]
        # Private: the SDK offers no getter; this line breaks if it renames the attribute.
        assert processor._batch_processor._max_queue_size == 600
    finally:
        tracing.SINK[0].shutdown()  # type: ignore[attr-defined]
        tracing.SINK.clear()
