"""The Flask application every sample service starts from.

It adds what each service needs and none should write twice: the instance's identity on every
response (an ``X-Instance-ID`` header, and an ``instance`` field via :func:`reply`), a cheap
``/health``, fault knobs, and JSON errors instead of HTML pages or tracebacks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from discovery import env
from discovery.settings import instance_id
from services.common import faults
from services.common.faults import Faults

log = logging.getLogger(__name__)
UNGUARDED = ("/health", "/admin/")  # paths that fault injection never touches


def create_base_app(name: str, config: Mapping[str, Any] | None = None) -> Flask:
    """A Flask app for service *name*: identity, health, faults and JSON errors."""
    app = Flask(name)
    port = env.get_int(os.environ, "SERVICE_PORT", 8000, 1, 65535)
    # The same ID the instance registers under in Consul (SERVICE_NAME may rename a service).
    registered_as = os.environ.get("SERVICE_NAME", "").strip() or name
    app.config.from_mapping(SERVICE_NAME=name, INSTANCE_ID=instance_id(registered_as, port))
    if config:
        app.config.from_mapping(config)
    app.extensions["faults"] = faults.Faults.from_env()
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


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    return jsonify(error=exc.name.lower(), detail=exc.description, status=status), status


def _unexpected_error(exc: Exception) -> ResponseReturnValue:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return jsonify(error="internal server error", status=500), 500
