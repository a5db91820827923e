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
    """Every service, its route, and its instances with their health and gateway state."""
    proxy = _proxy()
    routed = {r.service: r for r in proxy.routes.routes}
    now = time.monotonic()
    services = []
    for name, service in sorted(proxy.watcher.services.items()):
        route = routed.get(name)
        instances = []
        for instance in service.instances:
            stats = proxy.stats.get(instance.id)
            instances.append(
                {
                    **instance.to_dict(),
                    "ejected": proxy.stats.is_ejected(instance.id, now),
                    "outstanding": stats.outstanding,
                    "latency_ewma_ms": round(stats.ewma * 1000, 3),
                }
            )
        services.append(
            {
                "service": name,
                "prefix": route.prefix if route else None,
                "balancer": route.balancer if route else None,
                "passing": len(service.passing),
                "instances": instances,
            }
        )
    return jsonify(services=services, discovery=proxy.watcher.status())


@bp.get("/health")
def health() -> ResponseReturnValue:
    """200 while the Consul data is fresh enough to route by, else 503 with the reason."""
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
    return jsonify(
        status=state,
        stale=state != "ok",
        stale_after_seconds=stale_after,
        last_sync_age_seconds=status["last_sync_age_seconds"],
        discovery=status,
        retry_budget_denied=proxy.budget.denied,
    ), code


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
