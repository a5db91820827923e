"""Answers the gateway writes itself: status lines, heads, and JSON errors with a stable code."""

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


def error_answer(
    code: int,
    error_code: str,
    detail: str,
    request_id: str,
    keep_alive: bool = False,
    version: str = "1.1",
    extra_headers: tuple[bytes, ...] = (),
    head_only: bool = False,
    **extra: Any,
) -> bytes:
    """A whole JSON error answer, head and body; by default the connection closes after it.

    With *head_only* (the answer to HEAD) the head keeps the body's length but the body is
    left out: a client reads no body after a HEAD, so its bytes would be taken for the next
    answer on the connection.
    """
    body = error_body(code, error_code, detail, request_id, **extra)
    lines = [b"Content-Type: application/json", b"X-Request-ID: " + request_id.encode()]
    lines += extra_headers
    head = response_head(status_line(code), lines, len(body), keep_alive, False, version)
    return head if head_only else head + body


def error_body(code: int, error_code: str, detail: str, request_id: str, **extra: Any) -> bytes:
    """``{"error": "no_passing_instance", "detail": ..., "status": 503, "request_id": ...}``."""
    return json.dumps(
        {"error": error_code, "detail": detail, "status": code, "request_id": request_id, **extra}
    ).encode()


def response_head(
    status_line: bytes,
    lines: list[bytes],
    length: int | None,
    keep_alive: bool,
    chunked: bool,
    version: str = "1.1",
) -> bytes:
    """The head of an answer: status, headers, framing, and the connection's fate.

    ``Connection: close`` when the gateway will close; ``Connection: keep-alive`` for an
    HTTP/1.0 client it keeps, since such a client assumes a close otherwise.
    """
    parts = [b"HTTP/1.1 " + status_line, *lines]
    if chunked:
        parts.append(b"Transfer-Encoding: chunked")
    elif length is not None:
        parts.append(b"Content-Length: %d" % length)
    if not keep_alive:
        parts.append(b"Connection: close")
    elif version == "1.0":
        parts.append(b"Connection: keep-alive")
    return b"\r\n".join(parts) + b"\r\n\r\n"
