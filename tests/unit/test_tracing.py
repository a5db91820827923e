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
        (f"00-{TRACE}-{SPAN}-09", "01"),  # unknown flags are accepted, then set to zero
        (f"00-{TRACE}-{SPAN}-02", "00"),  # Level 2's random flag: not forwarded (Level 1)
        (f"00-{TRACE}-{SPAN}-ff", "01"),
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


@pytest.mark.parametrize(
    ("flags", "sent"), [("09", "01"), ("fe", "00"), ("03", "01"), ("00", "00")]
)
def test_a_hop_forwards_only_the_sampled_flag(flags: str, sent: str) -> None:
    """W3C Trace Context Level 1: a vendor MUST set the flags it does not know to zero."""
    hop = tracing.hop(f"00-{TRACE}-{SPAN}-{flags}")
    assert hop.outgoing.flags == sent
    assert hop.outgoing.header().endswith(f"-{sent}")


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


def trace_with_low_bits(low: int) -> str:
    """A trace ID whose lower 64 bits (what the ratio sampler compares) are *low*."""
    return f"{0xABCDEF:016x}{low:016x}"


@pytest.mark.parametrize(
    ("sampler", "parent_flags", "expected"),
    [
        (tracing.Sampler(1.0, True), "00", "00"),  # parentbased_always_on: the caller decides
        (tracing.Sampler(1.0, True), "01", "01"),
        (tracing.Sampler(0.0, True), "01", "01"),  # parentbased_always_off
        (tracing.Sampler(0.0, False), "01", "00"),  # always_off ignores the caller
        (tracing.Sampler(1.0, False), "00", "01"),  # always_on ignores the caller
    ],
)
def test_a_sampler_decides_a_continued_trace_as_opentelemetry_does(
    sampler: tracing.Sampler, parent_flags: str, expected: str
) -> None:
    assert tracing.hop(f"00-{TRACE}-{SPAN}-{parent_flags}", sampler).outgoing.flags == expected


def test_the_ratio_sampler_is_deterministic_on_the_trace_id() -> None:
    tenth = tracing.Sampler(0.1, parent_based=False)
    bound = round(0.1 * 2**64)
    assert tenth.flags(trace_with_low_bits(bound - 1), None) == "01"
    assert tenth.flags(trace_with_low_bits(bound), None) == "00"
    # The same trace ID decides alike every time, and a trace a smaller ratio samples is
    # sampled by every larger one.
    ids = [tracing.new_trace_id() for _ in range(2000)]
    first = [tenth.flags(t, None) for t in ids]
    assert first == [tenth.flags(t, None) for t in ids]
    half = tracing.Sampler(0.5, parent_based=False)
    assert all(half.flags(t, None) == "01" for t, f in zip(ids, first, strict=True) if f == "01")
    assert 100 < first.count("01") < 320  # about 200 of 2000 (a binomial; 1e-9 to fail)


def test_new_traces_follow_the_sampler() -> None:
    assert {tracing.start(tracing.Sampler(0.0)).outgoing.flags for _ in range(50)} == {"00"}
    assert {tracing.start().outgoing.flags for _ in range(50)} == {"01"}  # the default


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, tracing.Sampler(1.0, True)),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, tracing.Sampler(0.0, False)),
        (
            {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "x"},
            tracing.Sampler(1.0, False),
        ),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, tracing.Sampler(0.0, True)),
        ({"OTEL_TRACES_SAMPLER": "traceidratio"}, tracing.Sampler(1.0, False)),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            tracing.Sampler(0.25, True),
        ),
    ],
)
def test_the_sampler_is_read_from_the_standard_variables(
    environ: dict[str, str], expected: tracing.Sampler
) -> None:
    settings = ExportSettings.from_env("quote", {"OTEL_TRACES_EXPORTER": "otlp", **environ})
    assert settings.sampler == expected


def test_sampler_variables_are_not_read_while_export_is_off() -> None:
    settings = ExportSettings.from_env("quote", {"OTEL_TRACES_SAMPLER": "nonsense"})
    assert settings == ExportSettings() and settings.sampler == tracing.DEFAULT_SAMPLER


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OTEL_TRACES_SAMPLER": "probabilistic"}, "OTEL_TRACES_SAMPLER"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
            "OTEL_TRACES_SAMPLER_ARG",
        ),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "a"},
            "OTEL_TRACES_SAMPLER_ARG",
        ),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
    ],
)
def test_bad_sampler_settings_name_their_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        ExportSettings.from_env("quote", {"OTEL_TRACES_EXPORTER": "otlp", **environ})


def test_the_queue_size_is_read_from_the_batch_processor_variable() -> None:
    environ = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_MAX_QUEUE_SIZE": "100"}
    assert ExportSettings.from_env("quote", environ).queue_size == 100
    assert ExportSettings.from_env("quote", {"OTEL_TRACES_EXPORTER": "otlp"}).queue_size == 2048


def members(n: int, size: int = 10) -> list[str]:
    """*n* distinct tracestate members of *size* characters each."""
    return [f"k{i:03d}=" + "v" * (size - 5) for i in range(n)]


def test_a_tracestate_within_the_limits_passes_unchanged() -> None:
    value = ",".join(members(32, 15))  # 32 members, 511 characters
    assert len(value) == 511
    assert tracing.limit_tracestate(value) == value


def test_a_tracestate_over_32_members_keeps_the_first_32() -> None:
    assert tracing.limit_tracestate(",".join(members(40))) == ",".join(members(32))


def test_a_long_tracestate_loses_its_long_members_first_then_members_from_the_end() -> None:
    short, long = members(30, 16), "big=" + "x" * 200
    value = ",".join([short[0], long, *short[1:]])  # 30 * 16 + 204 + 30 commas: over 512
    assert tracing.limit_tracestate(value) == ",".join(short)  # 509 characters: it fits
    cut = tracing.limit_tracestate(",".join(members(20, 40)))  # 20 * 41 - 1 = 819 characters
    assert cut == ",".join(members(12, 40))  # whole members, from the end, within 512
    assert len(cut) <= 512


def test_a_tracestate_of_one_huge_member_is_dropped() -> None:
    assert tracing.limit_tracestate("a=" + "x" * 60_000) == ""
    assert tracing.limit_tracestate(" , a=1,, ,b=2" + "," * 40) == "a=1,b=2"
