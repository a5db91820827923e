"""Adds up the workers' metrics snapshots and renders them for Prometheus; pure functions.

A snapshot is what :func:`gateway.metrics.snapshot` returns: per family, rows of label values
then the value. Counters and histograms (per-bucket counts, then the sum) add up across
workers; a gauge takes the highest value (the freshest Consul read of any worker).
prometheus_client writes the exposition text, with label names in order as its multiprocess
collector did, and each histogram's buckets made cumulative.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, Metric, generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gateway.metrics import BUCKETS, FAMILIES, UNROUTED, Labels, Snapshot

# The "le" label of each bucket, as prometheus_client spells bounds ("0.005", "+Inf").
LE = tuple(floatToGoString(b) for b in (*BUCKETS, math.inf))  # type: ignore[no-untyped-call]


def merge(snapshots: Iterable[Snapshot], known: Collection[str] | None = None) -> Snapshot:
    """Workers' snapshots added up: counters and histograms summed, gauges at their highest.

    With *known*, only the series of those services (and of unrouted requests) are kept.
    """
    totals: dict[str, dict[Labels, list[float]]] = {name: {} for name in FAMILIES}
    for snap in snapshots:
        for name, rows in snap["series"].items():
            family = FAMILIES.get(name)
            if family is None:
                continue  # written by a newer or older gateway: not this one's to show
            found = totals[name]
            width = len(family.labelnames)
            for row in rows:
                labels, values = tuple(row[:width]), row[width:]
                if known is not None and not _known(family.labelnames, labels, known):
                    continue
                total = found.get(labels)
                if total is None:
                    found[labels] = list(values)
                elif family.kind == "gauge":
                    found[labels] = [max(a, b) for a, b in zip(total, values, strict=True)]
                else:
                    found[labels] = [a + b for a, b in zip(total, values, strict=True)]
    series = {n: [[*k, *v] for k, v in rows.items()] for n, rows in totals.items()}
    return {"known": sorted(known) if known is not None else None, "series": series}


def _known(names: Labels, labels: Labels, known: Collection[str]) -> bool:
    """Whether a row belongs to a service in *known*, to unrouted requests, or to no service."""
    return names[:1] != ("service",) or labels[0] == UNROUTED or labels[0] in known


class _Rendered(Collector):
    """The families of a merged snapshot, as prometheus_client's exposition expects them."""

    def __init__(self, merged: Snapshot) -> None:
        self.merged = merged

    def collect(self) -> Iterator[Metric]:
        for name, rows in self.merged["series"].items():
            family = FAMILIES.get(name)
            if family is None:
                continue
            metric = Metric(family.name, family.documentation, family.kind)
            width = len(family.labelnames)
            # Label names in order, as prometheus_client's multiprocess collector wrote them.
            for row in sorted(rows, key=lambda r: r[:width]):
                labels = dict(zip(family.labelnames, row[:width], strict=True))
                if family.kind == "histogram":
                    _add_histogram(metric, labels, row[width:])
                else:
                    suffix = "_total" if family.kind == "counter" else ""
                    metric.add_sample(
                        family.name + suffix, dict(sorted(labels.items())), row[width]
                    )
            yield metric


def _add_histogram(metric: Metric, labels: dict[str, str], values: list[float]) -> None:
    """Cumulative ``_bucket`` samples, then ``_count`` and ``_sum``, from per-bucket counts."""
    total = 0.0
    for le, count in zip(LE, values[:-1], strict=True):
        total += count
        bucket = dict(sorted({**labels, "le": le}.items()))
        metric.add_sample(metric.name + "_bucket", bucket, total)
    metric.add_sample(metric.name + "_count", labels, total)
    metric.add_sample(metric.name + "_sum", labels, values[-1])


def render(merged: Snapshot) -> tuple[bytes, str]:
    """The exposition text of a merged snapshot, and its content type."""
    return generate_latest(_Rendered(merged)), CONTENT_TYPE_LATEST
