"""The one JSON error shape of the project, the gateway's: every service answers errors with it.

``{"error": "not_found", "detail": "no product with sku 'x'", "status": 404, "request_id": ...}``:
``error`` is a stable snake_case code for programs, ``detail`` is for people, and
``request_id`` is the ``X-Request-ID`` the gateway sent (null when a client called directly).
"""

from __future__ import annotations

import re
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def error_code(exc: HTTPException) -> str:
    """A snake_case code from the status's name: ``Method Not Allowed`` -> ``method_not_allowed``."""
    return _NOT_WORD.sub("_", (exc.name or "error").lower()).strip("_")


def error_reply(status: int, code: str, detail: str, **extra: Any) -> ResponseReturnValue:
    """A JSON error answer in the project's shape; *extra* adds fields (``problems``)."""
    body = {
        "error": code,
        "detail": detail,
        "status": status,
        "request_id": request.headers.get("X-Request-ID"),
        **extra,
    }
    return jsonify(body), status
