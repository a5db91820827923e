"""What an operator sees of a service: request and trace IDs, access log, metrics, spans.

:func:`install` hooks a Flask app so that every request

- continues the caller's W3C trace (``traceparent``; a new trace if none or an invalid one
  came) and keeps it in :data:`discovery.tracing.CURRENT`, where
  :class:`discovery.ServiceClient` finds it for outgoing calls;
- puts its ``X-Request-ID`` (the gateway's, or a new one) and trace ID on every log line;
- writes one access-log line when ``ACCESS_LOG`` is on;
- counts in Prometheus metrics by route template (``/items/<sku>``, never the raw path, so
  label values stay bounded), method and status, with an in-flight gauge, served at
  ``/metrics`` (all gunicorn workers added up, see :mod:`discovery.metrics_dir`);
- is exported as a span when ``OTEL_TRACES_EXPORTER=otlp`` (OpenTelemetry is imported only
  then).
"""

from __future__ import annotations

import logging
import re
import time
from random import getrandbits

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from discovery import logs, metrics_dir, tracing
from discovery.tracing import SpanRecord, Trace
from services.common.settings import ServiceSettings

access_log = logging.getLogger("services.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # as the gateway accepts them
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # the route label of requests no route matched (404, 405)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "http_server_requests_total",
    "Requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "http_server_request_duration_seconds",
    "Time to answer a request, by route template and method.",
    ["route", "method"],
    buckets=BUCKETS,
)
IN_FLIGHT = Gauge(
    "http_server_requests_in_flight",
    "Requests being served now, in every worker.",
    multiprocess_mode="livesum",
)


def install(app: Flask) -> None:
    """Trace, log, count and (if asked) export every request of *app*; serve ``/metrics``.

    Reads ``app.extensions["settings"]`` (:class:`services.common.settings.ServiceSettings`).
    """
    settings: ServiceSettings = app.extensions["settings"]
    if settings.otel.enabled and not tracing.SINK:
        from discovery import otlp  # OpenTelemetry is loaded only when export is on

        otlp.install(settings.otel, settings.instance_id)
    app.before_request(_begin)
    app.after_request(_answered)
    app.teardown_request(_end)
    # Multiprocess or not is decided once, here: the folder gunicorn's master made, if any.
    app.extensions["metrics_registry"] = _registry(metrics_dir.multiprocess_dir())
    app.add_url_rule("/metrics", "metrics", _metrics)


def _begin() -> None:
    rid = request.headers.get("X-Request-ID", "")
    if not _REQUEST_ID.fullmatch(rid):
        rid = f"{getrandbits(128):032x}"
    parents = request.headers.getlist("traceparent")
    sampler = current_app.extensions["settings"].otel.sampler
    hop = tracing.hop(parents[0] if len(parents) == 1 else None, sampler)
    state = ""
    if hop.parent_id:  # a continued trace keeps its tracestate, within the W3C limits
        state = tracing.limit_tracestate(",".join(request.headers.getlist("tracestate")))
    trace = Trace(hop.outgoing, state, hop.parent_id)
    IN_FLIGHT.inc()
    g.observed = (
        time.perf_counter(),
        time.time_ns(),
        tracing.CURRENT.set(trace),
        logs.CONTEXT.set((rid, hop.outgoing.trace_id)),
    )
    g.status, g.bytes = 500, 0  # until a response is made (an error escaping the handlers)


def _answered(response: Response) -> Response:
    g.status, g.bytes = response.status_code, response.content_length or 0
    return response


def _end(exc: BaseException | None) -> None:
    observed = g.pop("observed", None)
    if observed is None:
        return  # _begin never ran
    started, started_ns, trace_token, log_token = observed
    seconds = time.perf_counter() - started
    IN_FLIGHT.dec()
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    method = request.method if request.method in METHODS else "OTHER"
    status: int = g.status
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)
    trace = tracing.CURRENT.get()
    assert trace is not None
    settings: ServiceSettings = current_app.extensions["settings"]
    if settings.access_log:
        ms = round(seconds * 1000, 2)
        access_log.info(
            '"%s %s" %d %s %.1fms', request.method, request.path, status, route, ms,
            extra={
                "method": request.method, "path": request.path, "route": route,
                "status": status, "bytes": g.bytes, "duration_ms": ms,
            },
        )  # fmt: skip
    if tracing.SINK and trace.parent.sampled:
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "http.route": route,
            "url.path": request.path,
            "http.response.status_code": status,
        }
        own, caller = trace.parent, trace.incoming_parent
        span = SpanRecord(
            f"{method} {route}", "server", own.trace_id, own.parent_id, caller, started_ns,
            time.time_ns(), attributes, status >= 500,
        )  # fmt: skip
        tracing.SINK[0].record(span)
    tracing.CURRENT.reset(trace_token)
    logs.CONTEXT.reset(log_token)


def _registry(multiprocess_dir: str | None) -> CollectorRegistry:
    """What ``/metrics`` serves: every worker's files added up, or this process's values."""
    if multiprocess_dir is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, multiprocess_dir)  # type: ignore[no-untyped-call]
    return registry


def _metrics() -> Response:
    """The Prometheus exposition of every worker of this instance."""
    data = generate_latest(current_app.extensions["metrics_registry"])
    return Response(data, content_type=CONTENT_TYPE_LATEST)
