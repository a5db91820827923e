"""What the gateway does with each service and instance, read without changing anything.

Shared by the routing page's data (``/_gateway/state``) and ``/_gateway/explain``. The reads
run in an admin thread while the event loop keeps routing: the snapshots (the watcher's
services, the proxy's route table) are replaced, never mutated, and the counters a read may
catch mid-update only make the view a request old. The counters shown are this worker's, read
live, added to the other workers' snapshots (:mod:`gateway.admin.share`,
:mod:`gateway.admin.merge`); Consul's view and the routes are the same in every worker.

Without ``GATEWAY_ADMIN_DETAIL`` an instance is named by its place in its service
(``catalog#2``, in instance-ID order, the same in every worker) and its address, node and
check output are left out, as on ``/_gateway/routes``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from discovery.model import MAINTENANCE, PASSING, Instance
from discovery.window import WINDOW_SECONDS
from gateway.admin.merge import Snapshot, merge, merge_instance
from gateway.admin.share import snapshot
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
    """One instance as the balancers see it: routed to or not, and every reason why not.

    Ejection is each worker's own: *ejected_by* workers have it out (the panic threshold may
    still send it traffic, *ejection_ignored*); it is excluded only when every worker has it out.
    """

    instance: Instance
    label: str
    excluded: tuple[str, ...]
    ejected_by: int
    ejection_ignored: bool  # ejected, but the panic threshold routes to it anyway

    @property
    def routed(self) -> bool:
        """Whether a balancer may choose this instance now."""
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


def instance_views(
    proxy: Proxy, name: str, now: float, ejected: Sequence[frozenset[str]] | None = None
) -> list[InstanceView]:
    """Every instance of service *name*, with the reasons the balancers would skip it.

    Mirrors the proxy's choice of a first attempt: passing in Consul, inside
    ``GATEWAY_UPSTREAM_CIDRS``, and not ejected, unless too few would be left (the panic
    threshold) or it is the only passing instance. *ejected* holds the IDs each worker has
    ejected; by default, this worker's only.
    """
    listed = proxy.watcher.services.get(name)
    if listed is None:
        return []
    routable = proxy.services.get(name)
    passing = {i.id for i in routable.passing} if routable is not None else set()
    if ejected is None:
        ejected = [frozenset(i for i in passing if proxy.stats.is_ejected(i, now))]
    # Per worker: the passing instances it ejected, and whether its panic threshold ignores them.
    verdicts = []
    for out in ejected:
        out = out & passing
        panic = bool(out) and (
            len(passing) == 1
            or len(passing) - len(out) < proxy.settings.panic_threshold * len(passing)
        )
        verdicts.append((out, panic))
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
        by = [panic for out, panic in verdicts if instance.id in out]
        if by and len(by) == len(verdicts) and not any(by):
            excluded.append("ejected")
        label = instance.id if proxy.settings.admin_detail else f"{name}#{place}"
        views.append(InstanceView(instance, label, tuple(excluded), len(by), any(by)))
    return views


def instance_json(view: InstanceView, detail: bool, row: dict[str, Any]) -> dict[str, Any]:
    """One row of the routing page: the view, then the traffic *row* of the workers merged."""
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
    body.update(row)
    return body


def gathered(proxy: Proxy, pid: int, others: list[Snapshot], now: float) -> dict[str, Any]:
    """This worker's live counters merged with the other workers' *others* snapshots."""
    return merge([snapshot(proxy, pid, now), *others], now)


def page_state(
    proxy: Proxy,
    pid: int,
    others: list[Snapshot] | None = None,
    silent: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything the routing page shows: this worker (process *pid*) and the *others*.

    *others* are the other workers' snapshots (None: this worker's view alone); *silent*
    names the workers whose snapshot was missing, stale or unreadable.
    """
    now = time.monotonic()
    detail = proxy.settings.admin_detail
    status = proxy.watcher.status()
    view = gathered(proxy, pid, others or [], now)
    services = []
    for name, note in route_notes(proxy).items():
        rows = [
            instance_json(
                v, detail, view["instances"].get(v.instance.id) or merge_instance([], now)
            )
            for v in instance_views(proxy, name, now, view["ejected"])
        ]
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
    answered = sorted([pid, *(s["pid"] for s in others or [])])
    silent = silent or []
    return {
        "worker": {
            "pid": pid,  # the worker that answered
            "workers": proxy.settings.workers,
            "merged": others is not None,
            "answered": answered,
            "not_answering": silent,
            # Started but not yet written a snapshot, or exited and not yet replaced.
            "missing": max(0, proxy.settings.workers - len(answered) - len(silent))
            if others is not None
            else None,
        },
        "detail": detail,
        "window_seconds": WINDOW_SECONDS,
        "consul": {
            # The freshest read of any worker; the rest is as the answering worker sees it.
            "last_sync_age_seconds": view["last_sync_age_seconds"],
            # A blocking query answers at least this often while Consul is up.
            "watch_wait_seconds": proxy.settings.watch_wait,
            "stale_after_seconds": proxy.settings.stale_after,
            "failing_for_seconds": status["failing_for_seconds"],
            "from_snapshot_file": status["from_snapshot_file"],
            "last_error": status["last_error"] if detail else None,
        },
        "retry_budget": view["retry_budget"],
        "services": services,
    }
