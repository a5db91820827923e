"""W3C Trace Context rules: which traceparent values are valid, and what each hop sends on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery import tracing
from discovery.errors import SettingsError
from discovery.tracing import ExportSettings, SpanRecord, Trace, TraceParent

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
ROOT = Path(__file__).resolve().parents[2]
HEADER = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


@pytest.mark.parametrize(
    ("value", "flags"),
    [
        (f"00-{TRACE}-{SPAN}-01", "01"),
        (f"00-{TRACE}-{SPAN}-00", "00"),
        (f"00-{TRACE}-{SPAN}-09", "09"),  # unknown flags are kept, not refused
        (f" 00-{TRACE}-{SPAN}-01\t", "01"),  # optional whitespace around a header value
        (f"01-{TRACE}-{SPAN}-01", "01"),  # a later version, read as version 00
        (f"cc-{TRACE}-{SPAN}-01-what-the-future-holds", "01"),  # later versions may add fields
    ],
)
def test_valid_traceparent_is_parsed(value: str, flags: str) -> None:
    assert tracing.parse(value) == TraceParent(TRACE, SPAN, flags)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"cc-{TRACE}-{SPAN}-01extra",  # a later version's fields follow a dash
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace ID
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent ID
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex
        f"0-{TRACE}-{SPAN}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN[:-1]}-01",
        f"00-{TRACE}-{SPAN}-1",
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE}-{SPAN}-0g",
        f"00-{TRACE[:-1]}g-{SPAN}-01",
        f"00-{TRACE},00-{TRACE}-{SPAN}-01",
    ],
)
def test_invalid_traceparent_is_refused(value: str | None) -> None:
    assert tracing.parse(value) is None


def test_a_hop_continues_a_valid_trace_with_a_new_span() -> None:
    hop = tracing.hop(f"00-{TRACE}-{SPAN}-00")
    assert hop.outgoing.trace_id == TRACE
    assert hop.outgoing.flags == "00"  # the caller's sampling decision stands
    assert hop.outgoing.parent_id != SPAN
    assert hop.parent_id == SPAN
    assert HEADER.fullmatch(hop.outgoing.header())


@pytest.mark.parametrize("incoming", [None, "", f"ff-{TRACE}-{SPAN}-01", "garbage"])
def test_a_hop_starts_a_sampled_trace_when_none_or_an_invalid_one_came(
    incoming: str | None,
) -> None:
    hop = tracing.hop(incoming)
    assert hop.parent_id == ""
    assert hop.outgoing.sampled
    assert tracing.parse(hop.outgoing.header()) == hop.outgoing
    assert hop.outgoing.trace_id != TRACE


def test_new_ids_are_random_and_never_zero() -> None:
    spans = {tracing.new_span_id() for _ in range(200)}
    traces = {tracing.new_trace_id() for _ in range(200)}
    assert len(spans) == 200 and len(traces) == 200
    assert all(re.fullmatch(r"[0-9a-f]{16}", s) and s != "0" * 16 for s in spans)
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) and t != "0" * 32 for t in traces)


class Recorded:
    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []

    def record(self, span: SpanRecord) -> None:
        self.spans.append(span)


@pytest.fixture
def sink() -> Iterator[Recorded]:
    recorded = Recorded()
    tracing.SINK[:] = [recorded]
    yield recorded
    tracing.SINK.clear()


def test_client_span_sends_a_child_of_the_current_trace(sink: Recorded) -> None:
    own = TraceParent(TRACE, SPAN, "01")
    token = tracing.CURRENT.set(Trace(own, "vendor=1", "1111111111111111"))
    try:
        with tracing.client_span("GET catalog", {"peer.service": "catalog"}) as headers:
            sent = tracing.parse(headers["traceparent"])
    finally:
        tracing.CURRENT.reset(token)
    assert sent is not None and sent.trace_id == TRACE and sent.parent_id != SPAN
    assert headers["tracestate"] == "vendor=1"
    (span,) = sink.spans
    assert (span.kind, span.span_id, span.parent_id) == ("client", sent.parent_id, SPAN)
    assert not span.error


def test_client_span_outside_a_request_starts_a_trace_and_marks_failures(sink: Recorded) -> None:
    with pytest.raises(ConnectionError), tracing.client_span("GET x", {}) as headers:
        raise ConnectionError("refused")
    assert tracing.parse(headers["traceparent"]) is not None
    assert "tracestate" not in headers
    (span,) = sink.spans
    assert span.parent_id == "" and span.error


def test_an_unsampled_trace_is_propagated_but_not_recorded(sink: Recorded) -> None:
    token = tracing.CURRENT.set(Trace(TraceParent(TRACE, SPAN, "00")))
    try:
        with tracing.client_span("GET catalog", {}) as headers:
            assert headers["traceparent"].endswith("-00")
    finally:
        tracing.CURRENT.reset(token)
    assert sink.spans == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ExportSettings()),
        ({"OTEL_TRACES_EXPORTER": "none"}, ExportSettings()),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, ExportSettings()),
        (
            {"OTEL_TRACES_EXPORTER": "otlp"},
            ExportSettings(True, "http://localhost:4318/v1/traces", "quote"),
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318/",
                "OTEL_SERVICE_NAME": "quote-eu",
            },
            ExportSettings(True, "http://jaeger:4318/v1/traces", "quote-eu"),
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c:4318/custom",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            ExportSettings(True, "https://c:4318/custom", "quote"),
        ),
    ],
)
def test_export_settings_are_read_from_the_standard_variables(
    environ: dict[str, str], expected: ExportSettings
) -> None:
    assert ExportSettings.from_env("quote", environ) == expected


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "jaeger:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
    ],
)
def test_bad_export_settings_name_their_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        ExportSettings.from_env("quote", environ)


def test_without_otel_variables_nothing_of_opentelemetry_is_imported() -> None:
    """Export is opt-in: a gateway and services built without OTEL_* never load the SDK."""
    program = (
        "import sys\n"
        "from gateway.app import create_app as gateway\n"
        "from services.catalog.app import create_app as catalog\n"
        "from services.quote.app import create_app as quote\n"
        "gateway(start=False); catalog(); quote()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
        "from discovery import otlp\n"  # the check itself can fail: the SDK is installed
        "assert 'opentelemetry.sdk.trace' in sys.modules\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "SERVICE_NAME": "catalog"}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
