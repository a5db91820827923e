"""The per-worker tally reaches prometheus_client exactly as direct observations would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway import metrics


def samples(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#") and "_created" not in line
    }


def test_a_flushed_tally_equals_direct_observations(monkeypatch: object) -> None:
    direct, batched = CollectorRegistry(), CollectorRegistry()
    observations = [("catalog", 200, 0.0004), ("catalog", 200, 0.02), ("-", 404, 40.0)]
    observations += [("catalog", 503, 0.001)] * 3
    for registry in (direct, batched):
        requests = Counter("req", "r", ["service", "code"], registry=registry)
        latency = Histogram("lat", "l", ["service"], buckets=metrics.BUCKETS, registry=registry)
        if registry is direct:
            for service, status, seconds in observations:
                requests.labels(service, str(status)).inc()
                latency.labels(service).observe(seconds)
        else:
            monkeypatch.setattr(metrics, "REQUESTS", requests)  # type: ignore[attr-defined]
            monkeypatch.setattr(metrics, "LATENCY", latency)  # type: ignore[attr-defined]
            tally = metrics.Tally()
            for observation in observations:
                tally.observe(*observation)
            tally.flush()
            tally.flush()  # a second flush adds nothing
    assert samples(batched) == samples(direct)
    assert samples(batched)['req_total{code="503",service="catalog"}'] == 3
