"""What the gateway does with each service and instance, read without changing anything.

Shared by the routing page's data (``/_gateway/state``) and ``/_gateway/explain``. The reads
run in an admin thread while the event loop keeps routing: the snapshots (the watcher's
services, the proxy's route table) are replaced, never mutated, and the counters a read may
catch mid-update only make the view a request old.

Without ``GATEWAY_ADMIN_DETAIL`` an instance is named by its place in its service
(``catalog#2``, in instance-ID order, the same in every worker) and its address, node and
check output are left out, as on ``/_gateway/routes``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from discovery.model import MAINTENANCE, PASSING, Instance
from discovery.stats import InstanceStats
from discovery.window import WINDOW_SECONDS
from gateway.policy import within
from gateway.proxy import Proxy
from gateway.routing import NAME, route_for


@dataclass(frozen=True)
class RouteNote:
    """Where a service is routed (*prefix*, None if nowhere) and, if not as asked, why."""

    service: str
    prefix: str | None
    balancer: str | None
    why: str | None


@dataclass(frozen=True)
class InstanceView:
    """One instance as the balancer sees it: routed to or not, and every reason why not."""

    instance: Instance
    label: str
    excluded: tuple[str, ...]
    stats: InstanceStats | None
    ejection_ignored: bool  # ejected, but the panic threshold routes to it anyway

    @property
    def routed(self) -> bool:
        """Whether the balancer may choose this instance now."""
        return not self.excluded


def route_notes(proxy: Proxy) -> dict[str, RouteNote]:
    """Every service Consul lists, with its route or the reason it has none."""
    routes = proxy.routes.routes
    routed = {r.service: r for r in routes}
    owners = {r.prefix: r.service for r in routes}
    notes: dict[str, RouteNote] = {}
    for name, service in sorted(proxy.watcher.services.items()):
        wanted = route_for(service, proxy.settings.balancer)
        route = routed.get(name)
        why: str | None = None
        if wanted is None:
            why = "the service opts out (gateway.expose=no)"
        elif route is None:
            why = "its name cannot be a path prefix" if not NAME.match(name) else "not routed yet"
        elif route.prefix != wanted.prefix:
            owner = owners.get(wanted.prefix)
            if wanted.prefix not in proxy.settings.route_claims.get(name, frozenset()):
                why = f"claim of {wanted.prefix} refused: not in GATEWAY_ROUTE_CLAIMS"
            else:
                why = f"claim of {wanted.prefix} refused: {owner or 'another service'} holds it"
        notes[name] = RouteNote(
            name, route.prefix if route else None, route.balancer if route else None, why
        )
    return notes


def instance_views(proxy: Proxy, name: str, now: float) -> list[InstanceView]:
    """Every instance of service *name*, with the reasons the balancer would skip it.

    Mirrors the proxy's choice of a first attempt: passing in Consul, inside
    ``GATEWAY_UPSTREAM_CIDRS``, and not ejected, unless too few would be left (the panic
    threshold) or it is the only passing instance.
    """
    listed = proxy.watcher.services.get(name)
    if listed is None:
        return []
    routable = proxy.services.get(name)
    passing = routable.passing if routable is not None else ()
    ejected = {i.id for i in passing if proxy.stats.is_ejected(i.id, now)}
    panic = bool(ejected) and (
        len(passing) == 1
        or len(passing) - len(ejected) < proxy.settings.panic_threshold * len(passing)
    )
    has_route = any(r.service == name for r in proxy.routes.routes)
    cidrs = proxy.settings.upstream_cidrs
    views = []
    for place, instance in enumerate(listed.instances, 1):
        excluded = []
        if not has_route:
            excluded.append("service_not_routed")
        if cidrs and not within(instance.address, cidrs):
            excluded.append("outside_upstream_cidrs")
        if instance.status == MAINTENANCE:
            excluded.append("maintenance")
        elif instance.status != PASSING:
            excluded.append(f"consul_{instance.status}")
        if instance.id in ejected and not panic:
            excluded.append("ejected")
        label = instance.id if proxy.settings.admin_detail else f"{name}#{place}"
        views.append(
            InstanceView(
                instance,
                label,
                tuple(excluded),
                proxy.stats.find(instance.id),
                instance.id in ejected and panic,
            )
        )
    return views


def stats_json(stats: InstanceStats | None, now: float) -> dict[str, Any]:
    """An instance's load, traffic, failures and ejection, with times as ages in seconds."""
    measured = stats is not None
    if stats is None:
        stats = InstanceStats()  # never talked to: all zeros
    series = stats.attempts.series(now)
    body: dict[str, Any] = {
        "in_flight": stats.outstanding,
        "latency_ewma_ms": round(stats.ewma * 1000, 3) if measured else None,
        "requests_last_minute": sum(series),
        "requests_per_second": series,
        "failures_last_minute": stats.failures.total(now),
        "consecutive_failures": stats.consecutive_failures,
        "last_failure": None,
        "ejection": None,
        "ejections_total": stats.ejections,
    }
    if stats.last_failure:
        body["last_failure"] = {
            "reason": stats.last_failure,
            "seconds_ago": round(now - stats.last_failure_at, 1),
        }
    if stats.ejections:
        body["ejection"] = {
            "active": stats.ejected_until > now,
            "reason": stats.ejection_reason,
            "failures": stats.ejection_failures,
            "since_seconds_ago": round(now - stats.ejected_at, 1),
            # Ends early once Consul has seen the instance down and passing again.
            "ends_in_seconds": round(max(0.0, stats.ejected_until - now), 1),
            "until_consul_reports_it_back": stats.awaiting_consul,
        }
    return body


def instance_json(view: InstanceView, detail: bool, now: float) -> dict[str, Any]:
    """One row of the routing page."""
    instance = view.instance
    body: dict[str, Any] = {
        "instance": view.label,
        "status": instance.status,
        "routed": view.routed,
        "excluded": list(view.excluded),
        "ejection_ignored_by_panic_threshold": view.ejection_ignored,
    }
    if detail:
        body["address"] = f"{instance.address}:{instance.port}"
        body["node"] = instance.node
        body["checks"] = [
            {"name": c.name, "status": c.status, "output": c.output} for c in instance.checks
        ]
    body.update(stats_json(view.stats, now))
    return body


def page_state(proxy: Proxy, pid: int) -> dict[str, Any]:
    """Everything the routing page shows, as this worker (process *pid*) sees it."""
    now = time.monotonic()
    detail = proxy.settings.admin_detail
    status = proxy.watcher.status()
    services = []
    for name, note in route_notes(proxy).items():
        rows = [instance_json(v, detail, now) for v in instance_views(proxy, name, now)]
        total = sum(r["requests_last_minute"] for r in rows)
        for row in rows:
            row["share"] = round(row["requests_last_minute"] / total, 4) if total else None
        services.append(
            {
                "service": name,
                "prefix": note.prefix,
                "balancer": note.balancer,
                "route_note": note.why,
                "requests_last_minute": total,
                "instances": rows,
            }
        )
    return {
        "worker": {"pid": pid, "workers": proxy.settings.workers},
        "detail": detail,
        "window_seconds": WINDOW_SECONDS,
        "consul": {
            "last_sync_age_seconds": status["last_sync_age_seconds"],
            # A blocking query answers at least this often while Consul is up.
            "watch_wait_seconds": proxy.settings.watch_wait,
            "stale_after_seconds": proxy.settings.stale_after,
            "failing_for_seconds": status["failing_for_seconds"],
            "from_snapshot_file": status["from_snapshot_file"],
            "last_error": status["last_error"] if detail else None,
        },
        "retry_budget": proxy.budget.usage(),
        "services": services,
    }
