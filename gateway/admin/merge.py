"""Adds up the workers' snapshots (see :mod:`gateway.admin.share`) into the gateway's view.

Pure functions over JSON-ready dicts, so the rules are unit-tested with tables. Times in a
snapshot are readings of the host's monotonic clock (``CLOCK_MONOTONIC`` is one clock for
every process of a host), so the workers' one-second buckets line up by their whole second.

The rules: requests, failures, in-flight counts, ejections and the retry budget are summed;
the latency is the mean of the workers' EWMAs weighted by the requests each sent in the last
minute (a worker that sent nothing has a stale guess, so it weighs nothing unless none sent
any); the failure streak is the longest of any worker's; the last failure the most recent.
Ejection is each worker's own decision, so ejections are listed per worker and counted.
"""

from __future__ import annotations

from typing import Any

from discovery.window import WINDOW_SECONDS

Snapshot = dict[str, Any]
# What the page shows of the retry budget, summed over the workers (each has its own budget).
BUDGET_SUMS = ("requests", "retries", "allowed", "granted_total", "denied_total")


def series(counts: list[int], second: int, now: float) -> list[int]:
    """Counts per second of the minute ending at *now*, oldest first, from a worker's *counts*.

    *counts* are newest first, the first one of the whole second *second*; the worker wrote
    them up to a second ago, so they shift by the seconds passed since.
    """
    shift = int(now) - second
    out = [0] * WINDOW_SECONDS
    for age, count in enumerate(counts, shift):
        if 0 <= age < WINDOW_SECONDS:
            out[WINDOW_SECONDS - 1 - age] = count
    return out


def _ejection_json(pid: int, ejection: dict[str, Any], now: float) -> dict[str, Any]:
    return {
        "worker": pid,
        "active": ejection["until"] > now,
        "reason": ejection["reason"],
        "failures": ejection["failures"],
        "since_seconds_ago": round(now - ejection["at"], 1),
        # Ends early once Consul has seen the instance down and passing again.
        "ends_in_seconds": round(max(0.0, ejection["until"] - now), 1),
        "until_consul_reports_it_back": ejection["awaiting_consul"],
    }


def merge_instance(entries: list[tuple[int, dict[str, Any]]], now: float) -> dict[str, Any]:
    """One instance's row, from the ``(pid, entry)`` of each worker that has talked to it."""
    per_second = [0] * WINDOW_SECONDS
    failures = [0] * WINDOW_SECONDS
    weighted = weights = 0.0
    ewmas: list[float] = []
    last: tuple[float, str] | None = None
    ejections = []
    for pid, entry in entries:
        sent = series(entry["attempts"], entry["second"], now)
        failed = series(entry["failures"], entry["second"], now)
        per_second = [a + b for a, b in zip(per_second, sent, strict=True)]
        failures = [a + b for a, b in zip(failures, failed, strict=True)]
        ewmas.append(entry["ewma"])
        weighted += entry["ewma"] * sum(sent)
        weights += sum(sent)
        if entry["last_failure"] and (last is None or entry["last_failure_at"] > last[0]):
            last = (entry["last_failure_at"], entry["last_failure"])
        if entry["ejection"] is not None:
            ejections.append(_ejection_json(pid, entry["ejection"], now))
    latency = weighted / weights if weights else (sum(ewmas) / len(ewmas) if ewmas else None)
    active = [e for e in ejections if e["active"]]
    # The one the page spells out: the active ejection that lasts longest, else the latest.
    shown = max(active, key=lambda e: e["ends_in_seconds"], default=None) or min(
        ejections, key=lambda e: e["since_seconds_ago"], default=None
    )
    return {
        "in_flight": sum(e["in_flight"] for _, e in entries),
        "latency_ewma_ms": None if latency is None else round(latency * 1000, 3),
        "requests_last_minute": sum(per_second),
        "requests_per_second": per_second,
        "failures_last_minute": sum(failures),
        "consecutive_failures": max((e["consecutive_failures"] for _, e in entries), default=0),
        "last_failure": None
        if last is None
        else {"reason": last[1], "seconds_ago": round(now - last[0], 1)},
        "ejection": shown,
        "ejected_by_workers": len(active),
        "ejections_by_worker": sorted(ejections, key=lambda e: e["worker"]),
        "ejections_total": sum(e["ejections"] for _, e in entries),
    }


def merge_budgets(budgets: list[dict[str, float]]) -> dict[str, float]:
    """The workers' retry budgets added up (each worker spends only its own)."""
    merged: dict[str, float] = {"window_seconds": budgets[0]["window_seconds"]}
    for key in BUDGET_SUMS:
        total = sum(b[key] for b in budgets)
        merged[key] = round(total, 1) if isinstance(total, float) else total
    return merged


def merge(snapshots: list[Snapshot], now: float) -> dict[str, Any]:
    """Every instance's merged row by ID, the summed budget and the freshest Consul read."""
    by_instance: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for snap in snapshots:
        for instance_id, entry in snap["instances"].items():
            by_instance.setdefault(instance_id, []).append((snap["pid"], entry))
    syncs = [s["last_sync"] for s in snapshots if s["last_sync"] is not None]
    return {
        "instances": {i: merge_instance(e, now) for i, e in by_instance.items()},
        "ejected": [
            frozenset(i for i, e in s["instances"].items() if _ejected(e, now)) for s in snapshots
        ],
        "retry_budget": merge_budgets([s["retry_budget"] for s in snapshots]),
        "last_sync_age_seconds": round(now - max(syncs), 3) if syncs else None,
    }


def _ejected(entry: dict[str, Any], now: float) -> bool:
    ejection = entry["ejection"]
    return ejection is not None and bool(ejection["until"] > now)
