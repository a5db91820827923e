"""``/_gateway/explain?path=...``: what the gateway would do with a request for a path, and why.

The answer walks the proxy's own steps for a first attempt: the route (and why the other
services' routes do not match), the candidate instances and the reasons any is skipped, and
the instance the balancer would choose now. The balancer is asked for a *preview*, drawn from
a private random generator: explaining changes no counter, takes no retry budget and moves no
round-robin turn. The pick, and which candidates it may draw from, are those of the worker that
answers (ejection is each worker's own); the candidates' traffic adds up every worker's.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from discovery.stats import InstanceStats
from gateway.admin.merge import Snapshot, merge_instance
from gateway.admin.view import gathered, instance_json, instance_views, route_notes
from gateway.policy import has_dot_segment, is_admin_path
from gateway.proxy import Proxy

MAX_PATH = 2048


class BadParameter(ValueError):
    """A query parameter of an admin request is missing or malformed; *name* says which."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name, self.detail = name, detail


def checked_path(values: list[str]) -> str:
    """The one ``path`` parameter, as the proxy would route it (the query dropped)."""
    if not values:
        raise BadParameter("path", "required, e.g. ?path=/catalog/items")
    if len(values) > 1:
        raise BadParameter("path", "give it once")
    path = values[0]
    if len(path) > MAX_PATH:
        raise BadParameter("path", f"at most {MAX_PATH} characters")
    if not path.startswith("/"):
        raise BadParameter("path", "must start with '/', e.g. /catalog/items")
    if any(not 0x21 <= ord(c) <= 0x7E for c in path):
        raise BadParameter("path", "printable ASCII only, no spaces; percent-encode the rest")
    path = path.partition("?")[0]
    if has_dot_segment(path.encode("ascii")):
        raise BadParameter("path", "has a '.' or '..' segment (the gateway answers 400 to it)")
    return path


def _load(stats: InstanceStats | None) -> dict[str, Any]:
    if stats is None:
        return {"in_flight": 0, "latency_ewma_ms": None}
    return {"in_flight": stats.outstanding, "latency_ewma_ms": round(stats.ewma * 1000, 3)}


def explain(
    proxy: Proxy,
    path: str,
    rng: random.Random | None = None,
    others: list[Snapshot] | None = None,
) -> dict[str, Any]:
    """What a request for *path* (already checked) would meet, as JSON-ready data.

    *others* are the other workers' snapshots, whose traffic the candidates' rows add up.
    """
    now = time.monotonic()
    pid = os.getpid()
    notes = route_notes(proxy)
    matched = proxy.routes.match(path)
    chosen = matched[0].service if matched else None
    routes = [
        {
            "service": note.service,
            "prefix": note.prefix,
            "matched": note.service == chosen,
            "note": note.why,
        }
        for note in notes.values()
    ]
    body: dict[str, Any] = {"path": path, "route": None, "routes": routes}
    if matched is None:
        if not proxy.watcher.has_data:
            body["answer"] = {"status": 503, "error": "not_synced"}
        else:
            body["answer"] = {"status": 404, "error": "unknown_service"}
        return body
    route, upstream_path = matched
    body["route"] = {
        "service": route.service,
        "prefix": route.prefix,
        "balancer": route.balancer,
        "upstream_path": upstream_path,
        "why": "the longest route prefix that is a whole-segment prefix of the path",
        # Per client and route (rate, burst) and per service and worker (in flight); 0: none.
        "limits": proxy.limits.get(route.service, proxy.defaults)._asdict(),
    }
    if route.service not in proxy.settings.expose_admin and is_admin_path(
        upstream_path.encode("latin-1")
    ):
        body["answer"] = {"status": 404, "error": "not_routed", "why": "a service's /admin path"}
        return body
    detail = proxy.settings.admin_detail
    views = instance_views(proxy, route.service, now)
    merged = gathered(proxy, pid, others or [], now)["instances"]
    body["worker"] = {
        "pid": pid,
        "workers_counted": 1 + len(others or []),
        "note": "candidates' traffic: every worker that answered; which candidates are "
        "eligible, and the pick: the balancer of this worker, which answered",
    }
    body["candidates"] = [
        instance_json(v, detail, merged.get(v.instance.id) or merge_instance([], now))
        for v in views
    ]
    for candidate in body["candidates"]:
        del candidate["requests_per_second"]  # the page's sparkline; noise here
    eligible = [v for v in views if v.routed]
    if not eligible:
        body["answer"] = {"status": 503, "error": "no_passing_instance"}
        return body
    preview = proxy.picker(route.service, route.balancer).preview(
        [v.instance for v in eligible], rng or random.Random()
    )
    label = {v.instance.id: v.label for v in views}
    body["pick"] = {
        "instance": label[preview.choice.id],
        "rule": preview.rule,
        "sampled": [
            {"instance": label[i.id], "cost": round(cost, 6), **_load(proxy.stats.find(i.id))}
            for i, cost in preview.sampled
        ],
        "note": f"a preview of the balancer of worker {pid}: a real request draws again, "
        "maybe in another worker, so it may pick another instance",
    }
    body["answer"] = {"status": None, "forwarded_to": label[preview.choice.id]}
    return body
