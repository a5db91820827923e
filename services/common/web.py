"""The Flask application every sample service starts from.

It adds what each service needs and none should write twice: the instance's identity on every
response (an ``X-Instance-ID`` header, and an ``instance`` field via :func:`reply`), a cheap
``/health``, fault knobs, the client's address, scheme and host from the gateway's
``X-Forwarded-*`` headers (werkzeug's ``ProxyFix``), and errors in the project's JSON shape
(:mod:`services.common.errors_json`) instead of HTML pages or tracebacks.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, jsonify, make_response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from services.common import faults, observability
from services.common.errors_json import error_code, error_reply
from services.common.faults import Faults
from services.common.settings import ServiceSettings

__all__ = ["create_base_app", "error_reply", "reply"]

log = logging.getLogger(__name__)
# Paths that fault injection never touches: health checks, the fault knobs themselves, and
# Prometheus scrapes (an injected error or delay there would hide the fault it should measure).
UNGUARDED = ("/health", "/admin/", "/metrics")


def create_base_app(name: str, config: Mapping[str, Any] | None = None) -> Flask:
    """A Flask app for service *name*: identity, health, faults, proxy headers, JSON errors.

    *config* may hold ``SETTINGS`` (a :class:`ServiceSettings`; else read from the
    environment, with *name* standing in for a missing ``SERVICE_NAME``) and any Flask config.
    """
    app = Flask(name)
    config = dict(config or {})
    settings: ServiceSettings = config.pop("SETTINGS", None) or ServiceSettings.from_env(
        default_name=name
    )
    # The same ID the instance registers under in Consul (SERVICE_NAME may rename a service).
    app.config.from_mapping(SERVICE_NAME=name, INSTANCE_ID=settings.instance_id)
    app.config.from_mapping(config)
    app.extensions["settings"] = settings
    app.extensions["faults"] = dataclasses.replace(settings.faults)  # changed at run time
    observability.install(app)  # before the fault hook, so injected faults are traced too
    if settings.trusted_hops:
        # The gateway sets X-Forwarded-For/-Proto/-Host/-Prefix; believe that many hops.
        hops = settings.trusted_hops
        # Wrapping app.wsgi_app is how Flask documents middleware; mypy sees a method there.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops
        )
    app.register_blueprint(faults.bp)
    app.add_url_rule("/health", "health", _health)
    app.before_request(_inject_faults)
    app.after_request(_stamp_instance)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def reply(payload: Mapping[str, Any], status: int = 200) -> ResponseReturnValue:
    """A JSON response that also names the instance that served it."""
    return jsonify({**payload, "instance": current_app.config["INSTANCE_ID"]}), status


def _health() -> ResponseReturnValue:
    if current_app.extensions["faults"].fail_health:
        return jsonify(status="failing", reason="fail_health fault is on"), 503
    return jsonify(status="ok")


def _inject_faults() -> ResponseReturnValue | None:
    if request.path.startswith(UNGUARDED):
        return None
    faults: Faults = current_app.extensions["faults"]
    return faults.before_request()


def _stamp_instance(response: Response) -> Response:
    response.headers["X-Instance-ID"] = current_app.config["INSTANCE_ID"]
    return response


def _http_error(exc: HTTPException) -> Response:
    response = make_response(error_reply(exc.code or 500, error_code(exc), exc.description or ""))
    # Keep what the exception says beyond its page, such as a 405's Allow header.
    for key, value in exc.get_headers():
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


def _unexpected_error(exc: Exception) -> ResponseReturnValue:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_reply(500, "internal_error", "the service failed; its log has the details")
