"""JSON error answers of the gateway: a status, a stable error code and a readable detail."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

_REASONS = {s.value: f"{s.value} {s.phrase}".encode() for s in HTTPStatus}


def status_line(code: int, reason: bytes = b"") -> bytes:
    """``b"404 Not Found"``; an upstream's own reason phrase is kept when given."""
    if reason:
        return b"%d %s" % (code, reason)
    return _REASONS.get(code) or b"%d Unknown" % code


def error_body(code: int, error_code: str, detail: str, request_id: str, **extra: Any) -> bytes:
    """``{"error": "no_passing_instance", "detail": ..., "status": 503, "request_id": ...}``."""
    return json.dumps(
        {"error": error_code, "detail": detail, "status": code, "request_id": request_id, **extra}
    ).encode()
