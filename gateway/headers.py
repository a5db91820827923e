"""Header rules of a correct HTTP forwarder, as pure functions over WSGI environ data.

What is dropped follows RFC 9110 section 7.6.1 and werkzeug's proxy middleware: the hop-by-hop
headers, and every header that ``Connection`` names. What is added: ``X-Forwarded-For``
(appended to), ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-Prefix`` (set by
this gateway, the edge), and ``X-Request-ID`` (kept, or generated).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by this gateway; a client's own values are replaced, never trusted.
SET_BY_GATEWAY = frozenset({"x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix"})
# Header names as WSGI spells them, converted once: "HTTP_X_REQUEST_ID" -> "X-Request-Id".
_NAME_CACHE: dict[str, str] = {}


def wsgi_header_name(key: str) -> str:
    """``HTTP_USER_AGENT`` -> ``User-Agent`` (cached: the same few names recur)."""
    name = _NAME_CACHE.get(key)
    if name is None:
        name = _NAME_CACHE[key] = key[5:].replace("_", "-").title()
    return name


def connection_tokens(value: str | None) -> frozenset[str]:
    """The header names listed in a ``Connection`` header, lowercased."""
    if not value:
        return frozenset()
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())


def request_headers(
    environ: Mapping[str, Any], request_id: str, prefix: str
) -> list[tuple[str, str]]:
    """The headers to send upstream for the request described by *environ*."""
    drop = HOP_BY_HOP | SET_BY_GATEWAY | connection_tokens(environ.get("HTTP_CONNECTION"))
    headers: list[tuple[str, str]] = []
    forwarded_for = environ.get("REMOTE_ADDR") or ""
    for key, value in environ.items():
        if not key.startswith("HTTP_"):
            continue
        name = wsgi_header_name(key)
        lower = name.lower()
        if lower in drop or lower == "x-request-id":
            continue
        if lower == "x-forwarded-for":
            forwarded_for = f"{value}, {forwarded_for}" if forwarded_for else value
            continue
        headers.append((name, value))
    if environ.get("CONTENT_TYPE"):
        headers.append(("Content-Type", environ["CONTENT_TYPE"]))
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    headers += [
        ("X-Forwarded-For", forwarded_for),
        ("X-Forwarded-Proto", environ.get("wsgi.url_scheme", "http")),
        ("X-Forwarded-Host", host),
        ("X-Forwarded-Prefix", prefix),
        ("X-Request-ID", request_id),
    ]
    return headers


def response_headers(
    raw: Iterable[tuple[str, str]], extra: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Upstream response headers minus hop-by-hop ones, plus *extra*."""
    pairs = list(raw)
    drop = HOP_BY_HOP
    for name, value in pairs:
        if name.lower() == "connection":
            drop = drop | connection_tokens(value)
    return [(n, v) for n, v in pairs if n.lower() not in drop] + extra
