"""JSON error responses of the gateway: a status, a stable error code and a readable detail."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

StartResponse = Callable[..., Any]
_REASONS = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


def status_line(code: int, reason: str = "") -> str:
    """``"404 Not Found"``; upstream reason phrases are kept when given."""
    return f"{code} {reason}" if reason else _REASONS.get(code, f"{code} Unknown")


def error(
    start_response: StartResponse,
    code: int,
    error_code: str,
    detail: str,
    request_id: str,
    **extra: Any,
) -> Iterable[bytes]:
    """Send a JSON error such as ``{"error": "no_passing_instance", "detail": ..., ...}``."""
    body = json.dumps(
        {"error": error_code, "detail": detail, "status": code, "request_id": request_id, **extra}
    ).encode()
    start_response(
        status_line(code),
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Request-ID", request_id),
        ],
    )
    return [body]
