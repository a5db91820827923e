"""The gateway's admin API under ``/_gateway/``, served by Flask off the hot path."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from gateway import metrics
from gateway.proxy import Proxy

bp = Blueprint("admin", __name__, url_prefix="/_gateway")


def _proxy() -> Proxy:
    proxy: Proxy = current_app.extensions["proxy"]
    return proxy


@bp.get("/routes")
def routes() -> ResponseReturnValue:
    """Every service, its route, and its instances' counts; details only when opted in.

    Instance IDs carry host names, and addresses, tags, meta and check output map the network:
    they are listed only with ``GATEWAY_ADMIN_DETAIL=true``.
    """
    proxy = _proxy()
    detail = proxy.settings.admin_detail
    routed = {r.service: r for r in proxy.routes.routes}
    now = time.monotonic()
    services = []
    for name, service in sorted(proxy.services.items()):
        route = routed.get(name)
        states = [
            (i, proxy.stats.get(i.id), proxy.stats.is_ejected(i.id, now)) for i in service.instances
        ]
        entry: dict[str, object] = {
            "service": name,
            "prefix": route.prefix if route else None,
            "balancer": route.balancer if route else None,
            "instances": len(service.instances),
            "passing": len(service.passing),
            "ejected": sum(1 for _, _, ejected in states if ejected),
            "outstanding": sum(stats.outstanding for _, stats, _ in states),
        }
        if detail:
            entry["instances"] = [
                {
                    **instance.to_dict(),
                    "ejected": ejected,
                    "outstanding": stats.outstanding,
                    "latency_ewma_ms": round(stats.ewma * 1000, 3),
                }
                for instance, stats, ejected in states
            ]
        services.append(entry)
    body: dict[str, object] = {"services": services}
    if detail:
        body["discovery"] = proxy.watcher.status()
    return jsonify(body)


@bp.get("/health")
def health() -> ResponseReturnValue:
    """200 while the Consul data is fresh enough to route by, else 503 with the reason.

    Open without the admin token (health checks), so it names no address and no error text.
    """
    proxy = _proxy()
    status = proxy.watcher.status()
    failing = status["failing_for_seconds"]
    stale_after = proxy.settings.stale_after
    if not proxy.watcher.services and status["last_sync_age_seconds"] is None:
        state, code = "no_data", 503
    elif failing is not None or status["from_snapshot_file"]:
        # Serving the last-known-good snapshot; past the staleness budget, say so with 503.
        state = "stale"
        code = 503 if isinstance(failing, float) and failing > stale_after else 200
    else:
        state, code = "ok", 200
    body: dict[str, object] = {
        "status": state,
        "stale": state != "ok",
        "stale_after_seconds": stale_after,
        "last_sync_age_seconds": status["last_sync_age_seconds"],
        "failing_for_seconds": failing,
        "from_snapshot_file": status["from_snapshot_file"],
        "services": status["services"],
        "retry_budget_denied": proxy.budget.denied,
    }
    if proxy.settings.admin_detail:
        body["discovery"] = status
    return jsonify(body), code


@bp.get("/metrics")
def prometheus_metrics() -> ResponseReturnValue:
    """Prometheus exposition of every worker's metrics."""
    metrics.set_last_sync(_proxy().watcher.last_success)
    body, content_type = metrics.render()
    return body, 200, {"Content-Type": content_type}


def _json_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    return jsonify(
        error=exc.name.lower().replace(" ", "_"), detail=exc.description, status=status
    ), status


def create_admin_app(proxy: Proxy) -> Flask:
    """The Flask app that serves ``/_gateway/*``."""
    app = Flask("gateway")
    app.extensions["proxy"] = proxy
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _json_error)
    return app
