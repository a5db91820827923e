"""Prometheus metrics of the gateway, served at ``/_gateway/metrics``.

Every gunicorn worker counts in plain dicts on its event loop: a request adds to two of them
and nothing else. Once a second, and before a scrape, a worker writes a :func:`snapshot` of
its counts to a file; a scrape adds up every worker's (:func:`merge`,
:mod:`gateway.metrics_share`) and prometheus_client renders the sum (:func:`render`). Labels
are service names (``-`` for requests no route matched), status codes and fixed reasons,
never raw paths.

The series of a service that Consul no longer lists are dropped (:func:`retain`), so churn
cannot grow a worker or the scrape. prometheus_client's multiprocess mode cannot do that: a
value it has written stays in its worker's file for the life of the gateway (removing labels
"has not been implemented in multi-process mode"), so 1,000 services registered, used once and
removed grew the scrape from 3 KB to 1.3 MB, and its time from 7 ms to 1.7 s.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, ClassVar

UNROUTED = "-"  # the service label of requests that matched no route
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A worker's counts, JSON-ready: {"known": service names or None, "series": {family: rows}};
# a row is the label values, then the value (a histogram's: its per-bucket counts, then sum).
Snapshot = dict[str, Any]
Labels = tuple[str, ...]


@dataclass(frozen=True)
class Family:
    """What a metric is: how workers' values add up (``kind``) and what it is called."""

    name: str
    kind: str  # "counter" (summed), "histogram" (summed per bucket) or "gauge" (the highest)
    documentation: str
    labelnames: Labels = ()


class Counter:
    """A counter family: ``COUNTER.labels(service, reason).inc()``, as in prometheus_client."""

    def __init__(self, name: str, documentation: str, labelnames: Labels = ()) -> None:
        self.family = Family(name, "counter", documentation, labelnames)
        self.values: dict[Labels, float] = {}

    def labels(self, *values: str) -> Series:
        """One series of the family (it exists from its first increment)."""
        return Series(self.values, values)

    def inc(self, amount: float = 1.0) -> None:
        """Add to the family's only series (one without labels)."""
        self.values[()] = self.values.get((), 0.0) + amount


class Series:
    """One labelled series of a :class:`Counter`."""

    __slots__ = ("key", "values")

    def __init__(self, values: dict[Labels, float], key: Labels) -> None:
        self.values, self.key = values, key

    def inc(self, amount: float = 1.0) -> None:
        """Add *amount* (1 by default)."""
        self.values[self.key] = self.values.get(self.key, 0.0) + amount


class Tally:
    """Requests by service and status code, and the time to the start of their answer."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = (*buckets, math.inf)
        self.counts: dict[tuple[str, int], int] = {}
        self.latency: dict[str, list[float]] = {}  # per-bucket counts, then the sum last
        self.observed = 0  # requests counted so far: whether a snapshot would say anything new

    def observe(self, service: str, status: int, seconds: float) -> None:
        """Count one answered request and the time to the start of its answer."""
        key = (service, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        row = self.latency.get(service)
        if row is None:
            row = self.latency[service] = [0.0] * (len(self.bounds) + 1)
        row[bisect_left(self.bounds, seconds)] += 1
        row[-1] += seconds
        self.observed += 1


REQUESTS = Family(
    "gateway_requests", "counter", "Requests answered, by service and status code.",
    ("service", "code"),
)  # fmt: skip
LATENCY = Family(
    "gateway_response_start_seconds", "histogram",
    "Time from a request's arrival to the start of the gateway's answer, retries included.",
    ("service",),
)  # fmt: skip
LAST_SYNC = Family(
    "gateway_discovery_last_sync_timestamp_seconds", "gauge",
    "Unix time of the freshest successful Consul read among the workers.",
)  # fmt: skip
RETRIES = Counter(
    "gateway_retries", "Attempts sent to another instance, by reason.", ("service", "reason")
)
EJECTIONS = Counter(
    "gateway_ejections", "Instances taken out of rotation by outlier ejection.", ("service",)
)
CLIENT_ABORTS = Counter(
    "gateway_client_aborts",
    "Requests the client gave up on: it closed, stopped sending its body, or sent too little.",
    ("service",),
)
LIMITED = Counter(
    "gateway_limited",
    "Requests refused by a limit: 429 for the rate per client and route, 503 for in-flight.",
    ("service", "limit"),
)
LOCAL_ERRORS = Counter(
    "gateway_local_resource_errors",
    "Upstream connections never tried because the gateway itself was out of a resource, by "
    "errno (EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL); answered 503, no instance blamed.",
    ("reason",),
)
BUDGET_DENIED = Counter("gateway_retry_budget_denied", "Retries the retry budget refused.")
COUNTERS = (RETRIES, EJECTIONS, CLIENT_ABORTS, LIMITED, LOCAL_ERRORS, BUDGET_DENIED)
FAMILIES = {f.name: f for f in (REQUESTS, LATENCY, LAST_SYNC, *(c.family for c in COUNTERS))}
TALLY = Tally()


class Worker:
    """What this worker knows besides its counts: the catalog's names, the last Consul read."""

    known: ClassVar[frozenset[str] | None] = None  # None until the first catalog: keep all
    last_sync: ClassVar[float | None] = None


def observe(service: str, status: int, seconds: float) -> None:
    """Count one answered request (on the hot path: two dict updates)."""
    TALLY.observe(service, status, seconds)


def set_last_sync(monotonic_time: float | None) -> None:
    """Record the last successful Consul read, given on the monotonic clock."""
    if monotonic_time is not None:
        Worker.last_sync = time.time() - (time.monotonic() - monotonic_time)


def retain(services: Collection[str]) -> None:
    """Consul lists *services* now; the series of others go at the next pruning snapshot.

    Called from the catalog watcher's thread; the dropping is left to the event loop.
    """
    Worker.known = frozenset(services)


def snapshot(prune: bool = False) -> Snapshot:
    """This worker's counts; with *prune* (on the event loop only), gone services' are dropped."""
    known = Worker.known

    def kept(values: dict[Any, Any], service_of: Callable[[Any], str]) -> Iterator[Any]:
        for key, value in list(values.items()):  # a copy: a scrape's thread may read meanwhile
            service = service_of(key)
            if known is None or service == UNROUTED or service in known:
                yield key, value
            elif prune:
                values.pop(key, None)

    series: dict[str, list[list[Any]]] = {
        REQUESTS.name: [
            [service, str(code), n] for (service, code), n in kept(TALLY.counts, itemgetter(0))
        ],
        LATENCY.name: [[service, *row] for service, row in kept(TALLY.latency, str)],
        LAST_SYNC.name: [[Worker.last_sync]] if Worker.last_sync is not None else [],
    }
    for counter in COUNTERS:
        names = counter.family.labelnames
        at = names.index("service") if "service" in names else None
        rows = list(counter.values.items()) if at is None else kept(counter.values, itemgetter(at))
        series[counter.family.name] = [[*labels, value] for labels, value in rows]
    return {"known": sorted(known) if known is not None else None, "series": series}
