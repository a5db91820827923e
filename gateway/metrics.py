"""Prometheus metrics of the gateway, served at ``/_gateway/metrics``.

Under gunicorn every worker is its own process, so the metrics use prometheus_client's
multiprocess mode: ``gateway/gunicorn.conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the workers start, and a scrape adds up every worker's values. Labels are
service names and status codes only (never raw paths), so their number stays bounded.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from bisect import bisect_left

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
FLUSH_INTERVAL = 1.0
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "gateway_requests_total", "Requests answered, by service and status code.", ["service", "code"]
)
LATENCY = Histogram(
    "gateway_response_start_seconds",
    "Time from a request's arrival to the start of the gateway's answer, retries included.",
    ["service"],
    buckets=BUCKETS,
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
LIMITED = Counter(
    "gateway_limited_total",
    "Requests refused by a limit: 429 for the rate per client and route, 503 for in-flight.",
    ["service", "limit"],
)
LOCAL_ERRORS = Counter(
    "gateway_local_resource_errors_total",
    "Upstream connections never tried because the gateway itself was out of a resource, by "
    "errno (EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL); answered 503, no instance blamed.",
    ["reason"],
)
BUDGET_DENIED = Counter("gateway_retry_budget_denied_total", "Retries the retry budget refused.")
LAST_SYNC = Gauge(
    "gateway_discovery_last_sync_timestamp_seconds",
    "Unix time of the freshest successful Consul read among the workers.",
    multiprocess_mode="max",
)


class Tally:
    """Request counts and latencies of one worker, handed to prometheus_client once a second.

    In multiprocess mode every increment is a write to a memory-mapped file after a ``getpid``
    check; three of them per request were a tenth of the proxy's own CPU time. Here a request
    adds to two dicts, and :meth:`flush` moves the sums, off the hot path. A scrape therefore
    lags by at most a second. Keys are route names and three-digit codes: bounded.
    """

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = (*buckets, math.inf)
        self.counts: dict[tuple[str, int], int] = {}
        self.latency: dict[str, list[float]] = {}  # bucket counts, then the sum last
        self.scheduled = False

    def observe(self, service: str, status: int, seconds: float) -> None:
        """Count one answered request and the time to the start of its answer."""
        key = (service, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        row = self.latency.get(service)
        if row is None:
            row = self.latency[service] = [0.0] * (len(self.bounds) + 1)
        row[bisect_left(self.bounds, seconds)] += 1
        row[-1] += seconds

    def flush(self) -> None:
        """Add what was counted since the last flush to the Prometheus metrics."""
        counts, self.counts = self.counts, {}
        latency, self.latency = self.latency, {}
        self.scheduled = False
        for (service, status), n in counts.items():
            REQUESTS.labels(service, str(status)).inc(n)
        for service, row in latency.items():
            child = LATENCY.labels(service)
            # prometheus_client has no "observe n times": add to its per-bucket values (one
            # per upper bound, not cumulative) and its sum. tests/unit/test_metrics.py fails
            # if these private attributes change shape.
            for value, bucket in zip(row[:-1], child._buckets, strict=True):
                if value:
                    bucket.inc(value)
            child._sum.inc(row[-1])


TALLY = Tally()


def observe(service: str, status: int, seconds: float) -> None:
    """Count one answered request; the counts reach Prometheus within a second."""
    TALLY.observe(service, status, seconds)
    if not TALLY.scheduled:
        TALLY.scheduled = True
        asyncio.get_running_loop().call_later(FLUSH_INTERVAL, TALLY.flush)


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
