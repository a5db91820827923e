"""W3C Trace Context (``traceparent``, ``tracestate``) as pure functions, and the current trace.

Every hop takes the incoming ``traceparent`` if it is valid, keeps its trace ID, and sends a
new parent ID (its own span) onward; an absent or invalid one starts a new trace, and then the
incoming ``tracestate`` is dropped with it (W3C Trace Context, "Processing model"). Whether a
trace is sampled is the :class:`Sampler`'s decision (``OTEL_TRACES_SAMPLER``; by default the
caller's flag, and every new trace). The gateway calls :func:`hop` per request, so it is a
regular expression and a random number: about a microsecond.

We follow Trace Context Level 1 (the W3C Recommendation): its only flag is ``sampled`` (0x01),
and "vendors MUST set" the others to zero, so every flag we send is ``00`` or ``01`` (Level 2's
``random`` flag, 0x02, is not set or forwarded: a continued trace's IDs are not ours to vouch
for). A ``tracestate`` is passed on whole up to 32 members and 512 characters; a longer one is
cut by whole members as the spec says (:func:`limit_tracestate`).

A service keeps the trace of the request it is serving in :data:`CURRENT` (a context variable,
so per thread and per asyncio task); :class:`discovery.ServiceClient` reads it to send a child
``traceparent`` with every outgoing call. Nothing here imports OpenTelemetry: export is opt-in
and lives in :mod:`discovery.otlp`, which finished spans reach through :data:`SINK`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from random import getrandbits
from typing import NamedTuple, Protocol

from discovery import env
from discovery.errors import SettingsError

# version-00 and later versions share their first 55 characters; "ff" is never valid. A later
# version may append fields after a dash; version 00 may not (checked in parse()).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
SAMPLED, NOT_SAMPLED = "01", "00"
_PROTOBUF = "http/protobuf"
_ODD = frozenset("13579bdf")  # last hex digits with the sampled bit set
# W3C limits: at most 32 list-members; a vendor propagates at least 512 characters, and when it
# must cut, it cuts whole members, those over 128 characters first (Level 1, "tracestate Limits").
TRACESTATE_MEMBERS, TRACESTATE_CHARS, TRACESTATE_LONG_MEMBER = 32, 512, 128


class TraceParent(NamedTuple):
    """A parsed ``traceparent``: trace ID, parent (span) ID and flags, all lowercase hex."""

    trace_id: str
    parent_id: str
    flags: str

    def header(self) -> str:
        """The version-00 header value."""
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"

    @property
    def sampled(self) -> bool:
        """Whether the caller records this trace (the flags' lowest bit): only then is it
        exported."""
        return self.flags[1] in _ODD  # the last hex digit is odd, without int()


def parse(value: str | None) -> TraceParent | None:
    """The trace in a ``traceparent`` value, or None if it is absent or invalid.

    Invalid: not lowercase hex, version ``ff``, an all-zero trace or parent ID, a version-00
    header of any length but 55, or a later version whose 55 characters are not followed by
    the end or a dash (the spec's rules for parsing a version it does not know). The flags come
    back masked to the sampled bit (``00`` or ``01``): unknown flags are never passed on.
    """
    if not value:
        return None
    m = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, parent_id, SAMPLED if flags[1] in _ODD else NOT_SAMPLED)


def new_span_id() -> str:
    """A random, non-zero 8-byte span ID in hex.

    ``random`` (reseeded per gunicorn worker) rather than ``os.urandom``: IDs must be unique,
    not secret, and this is the gateway's per-request cost.
    """
    return f"{getrandbits(64) or 1:016x}"


def new_trace_id() -> str:
    """A random, non-zero 16-byte trace ID in hex."""
    return f"{getrandbits(128) or 1:032x}"


@dataclass(frozen=True, slots=True)
class Sampler:
    """Which traces are sampled, as ``OTEL_TRACES_SAMPLER`` names it (OpenTelemetry's samplers).

    ``always_on`` and ``always_off`` are the ratios 1 and 0. A parent-based sampler keeps the
    caller's sampled flag and decides only for new traces. The ratio rule is the OpenTelemetry
    SDK's ``TraceIdRatioBased``: deterministic on the trace ID (its lower 64 bits below
    ``ratio * 2**64``), so every hop that applies it to one trace decides alike.
    """

    ratio: float = 1.0
    parent_based: bool = True
    bound: int = field(init=False, repr=False, compare=False)  # lower 64 bits below: sampled

    def __post_init__(self) -> None:
        object.__setattr__(self, "bound", round(self.ratio * 2**64))  # frozen: set once here

    def flags(self, trace_id: str, parent: TraceParent | None) -> str:
        """The flags of this hop's outgoing ``traceparent``: ``01`` (sampled) or ``00``."""
        if parent is not None and self.parent_based:
            return parent.flags
        if self.ratio >= 1.0:
            return SAMPLED
        if self.ratio <= 0.0:
            return NOT_SAMPLED
        # int() of 16 hex digits only here: the default samplers return above.
        return SAMPLED if int(trace_id[16:], 16) < self.bound else NOT_SAMPLED


DEFAULT_SAMPLER = Sampler()  # parentbased_always_on, OpenTelemetry's default


class Hop(NamedTuple):
    """What one hop sends on: the outgoing ``traceparent``, and the span it came from."""

    outgoing: TraceParent
    parent_id: str  # the incoming parent ID, "" when this hop started the trace


def start(sampler: Sampler = DEFAULT_SAMPLER) -> Hop:
    """A new trace with this hop's span as its root, sampled as *sampler* decides."""
    ids = f"{getrandbits(192):048x}"  # both IDs from one call: this runs per request
    trace_id, span_id = ids[:32], ids[32:]
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:  # once in 2**64: draw again
        trace_id, span_id = new_trace_id(), new_span_id()
    return Hop(TraceParent(trace_id, span_id, sampler.flags(trace_id, None)), "")


def start_ids(trace_id: str | None, sampler: Sampler = DEFAULT_SAMPLER) -> tuple[str, str, str]:
    """A new trace's (trace ID, span ID, flags), the trace ID *trace_id* if one was drawn for
    this request already (the gateway's own request ID: one random draw less per request).

    :func:`start` as three strings: the gateway's hot path makes no tuple class per request.
    """
    if trace_id is None or trace_id == _ZERO_TRACE:
        trace_id = new_trace_id()
    span_id = f"{getrandbits(64) or 1:016x}"
    if sampler.ratio >= 1.0 and sampler.parent_based:
        return trace_id, span_id, SAMPLED  # the default sampler: no call
    return trace_id, span_id, sampler.flags(trace_id, None)


def hop(incoming: str | None, sampler: Sampler = DEFAULT_SAMPLER) -> Hop:
    """Continue the incoming trace with a new span of this hop, or start a new one."""
    parent = parse(incoming)
    if parent is None:
        return start(sampler)
    flags = sampler.flags(parent.trace_id, parent)
    return Hop(TraceParent(parent.trace_id, new_span_id(), flags), parent.parent_id)


def limit_tracestate(value: str) -> str:
    """*value* if within 32 members and 512 characters, else cut by whole members.

    The W3C rule for cutting: members over 128 characters go first, then members from the
    end. Empty members (allowed, and common after joining several fields) are not counted.
    """
    if len(value) <= TRACESTATE_CHARS and value.count(",") < TRACESTATE_MEMBERS:
        return value  # the usual case: one comparison and one count
    members = [m for m in (m.strip(" \t") for m in value.split(",")) if m]
    del members[TRACESTATE_MEMBERS:]
    size = sum(map(len, members)) + len(members) - 1  # with the commas between them
    for i in reversed(range(len(members))):
        if size <= TRACESTATE_CHARS:
            break
        if len(members[i]) > TRACESTATE_LONG_MEMBER:
            size -= len(members.pop(i)) + 1
    while size > TRACESTATE_CHARS:
        size -= len(members.pop()) + 1
    return ",".join(members)


@dataclass(frozen=True)
class Trace:
    """The trace of the request being served: its span, and the ``tracestate`` to pass on."""

    parent: TraceParent  # this hop's own span as the parent ID
    tracestate: str = ""
    incoming_parent: str = ""  # the caller's span, "" when this hop started the trace


CURRENT: ContextVar[Trace | None] = ContextVar("trace", default=None)


class SpanRecord(NamedTuple):
    """A finished span, as the exporter needs it; times are Unix nanoseconds."""

    name: str
    kind: str  # "server" or "client"
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    start_ns: int
    end_ns: int
    attributes: Mapping[str, str | int]
    error: bool


class SpanSink(Protocol):
    """Where finished spans go (:class:`discovery.otlp.OtlpSink` when export is on)."""

    def record(self, span: SpanRecord) -> None:
        """Queue one finished span for export; never blocks on the network."""


SINK: list[SpanSink] = []  # empty unless OTel export is on: then one sink, set at start-up


@contextmanager
def client_span(name: str, attributes: Mapping[str, str | int]) -> Iterator[dict[str, str]]:
    """The headers of an outgoing call: a child ``traceparent`` of the current trace.

    Outside any traced request a new trace starts here. With export on, the call is
    recorded as a client span whose ID is the parent ID the callee sees.
    """
    current = CURRENT.get()
    span_id = new_span_id()
    if current is None:
        parent = TraceParent(new_trace_id(), span_id, SAMPLED)
        parent_id, state = "", ""
    else:
        parent = current.parent._replace(parent_id=span_id)
        parent_id, state = current.parent.parent_id, current.tracestate
    headers = {"traceparent": parent.header()}
    if state:
        headers["tracestate"] = state
    if not SINK or not parent.sampled:
        yield headers
        return
    start, failed = time.time_ns(), True
    try:
        yield headers
        failed = False
    finally:
        end = time.time_ns()
        span = SpanRecord(
            name, "client", parent.trace_id, span_id, parent_id, start, end, attributes, failed
        )
        SINK[0].record(span)


_SAMPLERS = {  # OTEL_TRACES_SAMPLER's values: (ratio from OTEL_TRACES_SAMPLER_ARG?, parent-based)
    "always_on": (False, False),
    "always_off": (False, False),
    "traceidratio": (True, False),
    "parentbased_always_on": (False, True),
    "parentbased_always_off": (False, True),
    "parentbased_traceidratio": (True, True),
}
BSP_QUEUE_SIZE = 2048  # the SDK's default OTEL_BSP_MAX_QUEUE_SIZE


@dataclass(frozen=True)
class ExportSettings:
    """OpenTelemetry export, opt-in with the standard ``OTEL_*`` variables.

    On only with ``OTEL_TRACES_EXPORTER=otlp`` (unset means off here, unlike the SDK's own
    default, so that nothing is sent anywhere unasked), over OTLP/HTTP with protobuf. Then
    ``OTEL_TRACES_SAMPLER`` (and its ``..._ARG``) decides which new traces are sampled, and
    ``OTEL_BSP_MAX_QUEUE_SIZE`` bounds what the gateway keeps between flushes. The SDK itself
    reads the rest: ``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``, ``OTEL_BSP_*``.
    """

    enabled: bool = False
    endpoint: str = ""
    service_name: str = ""
    sampler: Sampler = DEFAULT_SAMPLER
    queue_size: int = BSP_QUEUE_SIZE

    @classmethod
    def from_env(
        cls, service_name: str, environ: Mapping[str, str] | None = None
    ) -> ExportSettings:
        """Read ``OTEL_TRACES_EXPORTER``, the OTLP endpoint and protocol, ``OTEL_SERVICE_NAME``,
        the sampler and the batch processor's queue size."""
        e = os.environ if environ is None else environ
        exporter = env.get_choice(e, "OTEL_TRACES_EXPORTER", "none", ("none", "otlp"))
        if env.get_bool(e, "OTEL_SDK_DISABLED", False) or exporter == "none":
            return cls()
        # Only OTLP/HTTP with protobuf is served (the SDK's gRPC exporter is not installed).
        env.get_choice(e, "OTEL_EXPORTER_OTLP_PROTOCOL", _PROTOBUF, (_PROTOBUF,))
        env.get_choice(e, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", _PROTOBUF, (_PROTOBUF,))
        # The traces URL as given, else the base URL with the signal's path added.
        endpoint, name = e.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip(), "_TRACES"
        if not endpoint:
            base = env.get_str(e, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
            endpoint, name = base.rstrip("/") + "/v1/traces", ""
        if not endpoint.startswith(("http://", "https://")):
            raise SettingsError(
                f"OTEL_EXPORTER_OTLP{name}_ENDPOINT: expected an http(s) URL, got {endpoint!r}"
            )
        return cls(
            True,
            endpoint,
            env.get_str(e, "OTEL_SERVICE_NAME", service_name),
            sampler_from_env(e),
            env.get_int(e, "OTEL_BSP_MAX_QUEUE_SIZE", BSP_QUEUE_SIZE, 1, 1_000_000),
        )


def sampler_from_env(e: Mapping[str, str]) -> Sampler:
    """``OTEL_TRACES_SAMPLER`` and, for the ratio samplers, ``OTEL_TRACES_SAMPLER_ARG`` (a
    ratio from 0 to 1, default 1); the argument of the other samplers is ignored, as in the SDK."""
    name = env.get_choice(e, "OTEL_TRACES_SAMPLER", "parentbased_always_on", tuple(_SAMPLERS))
    takes_ratio, parent_based = _SAMPLERS[name]
    if takes_ratio:
        ratio = env.get_float(e, "OTEL_TRACES_SAMPLER_ARG", 1.0, 0.0, 1.0)
    else:
        ratio = 0.0 if name.endswith("always_off") else 1.0
    return Sampler(ratio, parent_based)
