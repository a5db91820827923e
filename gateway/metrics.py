"""Prometheus metrics of the gateway, served at ``/_gateway/metrics``.

Under gunicorn every worker is its own process, so the metrics use prometheus_client's
multiprocess mode: ``gateway/gunicorn.conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the workers start, and a scrape adds up every worker's values. Labels are
service names and status codes only (never raw paths), so their number stays bounded.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

UNROUTED = "-"  # the service label of requests that matched no route

REQUESTS = Counter(
    "gateway_requests_total", "Requests answered, by service and status code.", ["service", "code"]
)
LATENCY = Histogram(
    "gateway_response_start_seconds",
    "Time from a request's arrival to the start of the gateway's answer, retries included.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter(
    "gateway_retries_total", "Attempts sent to another instance, by reason.", ["service", "reason"]
)
EJECTIONS = Counter(
    "gateway_ejections_total", "Instances taken out of rotation by outlier ejection.", ["service"]
)
CLIENT_ABORTS = Counter(
    "gateway_client_aborts_total",
    "Requests the client gave up on: it closed, stopped sending its body, or sent too little.",
    ["service"],
)
BUDGET_DENIED = Counter("gateway_retry_budget_denied_total", "Retries the retry budget refused.")
LAST_SYNC = Gauge(
    "gateway_discovery_last_sync_timestamp_seconds",
    "Unix time of the freshest successful Consul read among the workers.",
    multiprocess_mode="max",
)


# Labelled children, looked up once: ``labels()`` costs about as much as the increment. The
# keys are route names and three-digit codes, so the cache is bounded by routes x 500.
_CHILDREN: dict[tuple[str, int], tuple[Any, Any]] = {}


def observe(service: str, status: int, seconds: float) -> None:
    """Count one answered request and the time to the start of its answer."""
    children = _CHILDREN.get((service, status))
    if children is None:
        children = _CHILDREN[service, status] = (
            REQUESTS.labels(service, str(status)),
            LATENCY.labels(service),
        )
    children[0].inc()
    children[1].observe(seconds)


def set_last_sync(monotonic_time: float | None) -> None:
    """Record the last successful Consul read, given on the monotonic clock."""
    if monotonic_time is not None:
        LAST_SYNC.set(time.time() - (time.monotonic() - monotonic_time))


def render() -> tuple[bytes, str]:
    """The exposition text of every worker's metrics, and its content type."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
