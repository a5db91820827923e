"""The echo service: describes the request it received, to show what the gateway forwards.

Any method on any path answers with the method, path, query, headers, the size and SHA-256
of the body, and the client as the service sees it (address, scheme and host, read from the
gateway's ``X-Forwarded-*`` headers). The body is read in chunks, so large uploads stream through without being held.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, request
from flask.typing import ResponseReturnValue

from services.common.web import create_base_app, reply

bp = Blueprint("echo", __name__)
CHUNK = 64 * 1024
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@bp.route("/", defaults={"path": ""}, methods=METHODS)
@bp.route("/<path:path>", methods=METHODS)
def echo(path: str) -> ResponseReturnValue:
    """Describe the request."""
    digest, size = hashlib.sha256(), 0
    while chunk := request.stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return reply(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode("latin-1"),
            "headers": dict(request.headers),
            "body_bytes": size,
            "body_sha256": digest.hexdigest(),
            "client": {
                "address": request.remote_addr,
                "scheme": request.scheme,
                "host": request.host,
            },
        }
    )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the echo app; gunicorn serves ``services.echo.app:create_app()``."""
    app = create_base_app("echo", config)
    app.register_blueprint(bp)
    return app
