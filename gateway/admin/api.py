"""The gateway's admin API under ``/_gateway/``, served by Flask off the hot path.

``/_gateway/`` is the live routing page (static files of ``gateway/admin/page/``), open
without the token since it holds no data; it reads ``/_gateway/state``, which needs it, and
which adds up every worker's counters (``gateway/admin/share.py``).
"""

from __future__ import annotations

import os
import time
from importlib import resources

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from gateway import metrics
from gateway.admin.explain import BadParameter, checked_path, explain
from gateway.admin.share import StateShare
from gateway.admin.view import page_state
from gateway.metrics_merge import merge, render
from gateway.metrics_share import MetricsShare
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


# The page's files: read once, served as they are. The page fetches nothing from elsewhere,
# and its Content-Security-Policy forbids it to.
PAGE_FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "routing-page.js": ("routing-page.js", "text/javascript; charset=utf-8"),
    "routing-page.css": ("routing-page.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@bp.get("/", defaults={"name": ""})
@bp.get("/<any('routing-page.js', 'routing-page.css'):name>")
def page(name: str) -> ResponseReturnValue:
    """The routing page and its script and style sheet."""
    body, content_type = current_app.extensions["routing_page"][name]
    return body, 200, {**PAGE_HEADERS, "Content-Type": content_type}


@bp.get("/state")
def state() -> ResponseReturnValue:
    """The routing page's data: every worker's counters added up; ``?worker=self``: this one's."""
    which = request.args.getlist("worker")
    if which not in ([], ["self"]):
        return _error(400, "bad_parameter", "worker: 'self' or left out", parameter="worker")
    share = _share()
    if which or share is None:
        body = page_state(_proxy(), os.getpid())
    else:
        body = page_state(_proxy(), os.getpid(), *share.others(time.monotonic()))
    return jsonify(body), 200, {"Cache-Control": "no-store"}


def _share() -> StateShare | None:
    """This worker's end of the shared folder; None outside gunicorn (tests, one process)."""
    share: StateShare | None = current_app.extensions.get("state_share")
    return share


@bp.get("/explain")
def explain_path() -> ResponseReturnValue:
    """What a request for ``?path=`` would meet: route, candidates, exclusions, the pick."""
    try:
        path = checked_path(request.args.getlist("path"))
    except BadParameter as exc:
        return _error(400, "bad_parameter", str(exc), parameter=exc.name)
    share = _share()
    others = share.others(time.monotonic())[0] if share is not None else None
    return jsonify(explain(_proxy(), path, others=others))


@bp.get("/metrics")
def prometheus_metrics() -> ResponseReturnValue:
    """Prometheus exposition of every worker's metrics (this one's written just before)."""
    share: MetricsShare | None = current_app.extensions.get("metrics_share")
    if share is None:  # one process, outside gunicorn
        metrics.set_last_sync(_proxy().watcher.last_success)
        merged = merge([metrics.snapshot()])
    else:
        merged = share.gather()
    body, content_type = render(merged)
    return body, 200, {"Content-Type": content_type}


def _error(status: int, code: str, detail: str, **extra: object) -> ResponseReturnValue:
    """The gateway's JSON error shape, with the request ID the front end gave this request."""
    request_id = request.environ.get("gateway.request_id", "-")
    body = {"error": code, "detail": detail, "status": status, "request_id": request_id}
    return jsonify({**body, **extra}), status


def _json_error(exc: HTTPException) -> ResponseReturnValue:
    return _error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or "")


def _page_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("gateway.admin") / "page"
    return {
        name: ((folder / file).read_bytes(), content_type)
        for name, (file, content_type) in PAGE_FILES.items()
    }


def create_admin_app(proxy: Proxy) -> Flask:
    """The Flask app that serves ``/_gateway/*``."""
    app = Flask("gateway")
    app.extensions["proxy"] = proxy
    app.extensions["routing_page"] = _page_files()
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _json_error)
    return app
