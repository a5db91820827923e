"""The gateway's metrics: counted per worker, added up across workers, rendered as Prometheus'.

What a worker counts goes with its service: once Consul no longer lists a service, its series
leave the worker and the scrape, so churn of services grows neither.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway import metrics
from gateway.metrics_merge import merge, render

OBSERVATIONS = [("catalog", 200, 0.0004), ("catalog", 200, 0.02), ("-", 404, 40.0)]
OBSERVATIONS += [("catalog", 503, 0.001)] * 3


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    """Every test starts with this process's counts empty and no catalog read yet."""
    saved = (metrics.TALLY, metrics.Worker.known, metrics.Worker.last_sync)
    metrics.TALLY = metrics.Tally()
    metrics.Worker.known = metrics.Worker.last_sync = None
    counters = {c.family.name: dict(c.values) for c in metrics.COUNTERS}
    for counter in metrics.COUNTERS:
        counter.values.clear()
    yield
    metrics.TALLY, metrics.Worker.known, metrics.Worker.last_sync = saved
    for counter in metrics.COUNTERS:
        counter.values.clear()
        counter.values.update(counters[counter.family.name])


def samples(text: bytes) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.decode().splitlines()
        if line and not line.startswith("#") and "_created" not in line
    }


def test_the_scrape_reads_as_prometheus_clients_own_metrics_would() -> None:
    direct = CollectorRegistry()
    requests = Counter("gateway_requests", "r", ["code", "service"], registry=direct)
    latency = Histogram(
        "gateway_response_start_seconds", "l", ["service"], buckets=metrics.BUCKETS,
        registry=direct,
    )  # fmt: skip
    retries = Counter("gateway_retries", "r", ["reason", "service"], registry=direct)
    denied = Counter("gateway_retry_budget_denied", "d", registry=direct)
    synced = Gauge("gateway_discovery_last_sync_timestamp_seconds", "s", registry=direct)
    for service, status, seconds in OBSERVATIONS:
        requests.labels(str(status), service).inc()
        latency.labels(service).observe(seconds)
        metrics.observe(service, status, seconds)
    retries.labels("status_503", "catalog").inc(2)
    metrics.RETRIES.labels("catalog", "status_503").inc(2)
    denied.inc()
    metrics.BUDGET_DENIED.inc()
    metrics.Worker.last_sync = 1_700_000_000.5
    synced.set(1_700_000_000.5)
    body, _ = render(merge([metrics.snapshot()]))
    assert samples(body) == samples(generate_latest(direct))
    assert samples(body)['gateway_requests_total{code="503",service="catalog"}'] == 3


def test_workers_counts_add_up_and_the_freshest_consul_read_wins() -> None:
    one = {"series": {"gateway_requests": [["echo", "200", 2.0]],
                      "gateway_response_start_seconds": [["echo", *[1.0] * 15, 0.5]],
                      "gateway_discovery_last_sync_timestamp_seconds": [[100.0]]}}  # fmt: skip
    two = {"series": {"gateway_requests": [["echo", "200", 3.0], ["echo", "404", 1.0]],
                      "gateway_response_start_seconds": [["echo", *[2.0] * 15, 0.25]],
                      "gateway_discovery_last_sync_timestamp_seconds": [[90.0]]}}  # fmt: skip
    merged = merge([one, two])["series"]
    assert sorted(merged["gateway_requests"]) == [["echo", "200", 5.0], ["echo", "404", 1.0]]
    assert merged["gateway_response_start_seconds"] == [["echo", *[3.0] * 15, 0.75]]
    assert merged["gateway_discovery_last_sync_timestamp_seconds"] == [[100.0]]


def test_series_of_a_service_consul_no_longer_lists_leave_the_worker() -> None:
    for name in ("gone-1", "gone-2", "kept"):
        metrics.observe(name, 200, 0.01)
        metrics.CLIENT_ABORTS.labels(name).inc()
        metrics.LIMITED.labels(name, "rate").inc()
    metrics.observe(metrics.UNROUTED, 404, 0.001)
    metrics.BUDGET_DENIED.inc()
    metrics.retain({"kept", "not-yet-used"})
    text = render(merge([metrics.snapshot(prune=True)]))[0].decode()
    assert "gone-" not in text
    assert 'gateway_client_aborts_total{service="kept"} 1.0' in text
    assert 'gateway_requests_total{code="404",service="-"} 1.0' in text  # unrouted: kept
    assert "gateway_retry_budget_denied_total 1.0" in text  # no service: kept
    # Gone from memory too, not only from the scrape.
    assert set(metrics.TALLY.latency) == {"kept", "-"}
    assert set(metrics.TALLY.counts) == {("kept", 200), ("-", 404)}
    assert set(metrics.LIMITED.values) == {("kept", "rate")}


def test_a_scrape_shows_only_the_services_listed_now_even_from_older_files() -> None:
    # exited.json, or a worker that has not seen the catalog change yet, may still hold them.
    old = {"series": {"gateway_requests": [["gone", "200", 7.0], ["kept", "200", 1.0]]}}
    merged = merge([old], known={"kept"})
    assert merged["series"]["gateway_requests"] == [["kept", "200", 1.0]]


def test_before_the_first_catalog_read_nothing_is_dropped() -> None:
    metrics.observe("early", 200, 0.01)
    snap = metrics.snapshot(prune=True)
    assert snap["series"]["gateway_requests"] == [["early", "200", 1]]
