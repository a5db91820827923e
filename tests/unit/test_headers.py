"""Header rules of the forwarder: what is dropped, kept and added."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.headers import connection_tokens, request_headers, response_headers, wsgi_header_name


def environ(**headers: str) -> dict[str, Any]:
    env: dict[str, Any] = {"REMOTE_ADDR": "203.0.113.9", "wsgi.url_scheme": "http"}
    env.update({f"HTTP_{k}": v for k, v in headers.items()})
    return env


def names(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {n.lower(): v for n, v in headers}


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("HTTP_USER_AGENT", "User-Agent"),
        ("HTTP_X_REQUEST_ID", "X-Request-Id"),
        ("HTTP_ACCEPT", "Accept"),
    ],
)
def test_wsgi_header_names_become_http_names(key: str, name: str) -> None:
    assert wsgi_header_name(key) == name


def test_connection_tokens_are_lowercased_and_trimmed() -> None:
    assert connection_tokens(" Keep-Alive , X-Secret,") == {"keep-alive", "x-secret"}
    assert connection_tokens(None) == frozenset()


@pytest.mark.parametrize(
    "hop",
    [
        "CONNECTION",
        "KEEP_ALIVE",
        "PROXY_AUTHORIZATION",
        "TE",
        "TRAILER",
        "TRANSFER_ENCODING",
        "UPGRADE",
    ],
)
def test_hop_by_hop_headers_are_not_forwarded(hop: str) -> None:
    sent = names(request_headers(environ(**{hop: "x"}, ACCEPT="*/*"), "rid", "/echo"))
    assert wsgi_header_name(f"HTTP_{hop}").lower() not in sent
    assert sent["accept"] == "*/*"


def test_headers_named_in_connection_are_dropped() -> None:
    env = environ(CONNECTION="close, X_Internal", X_INTERNAL="1", X_KEEP="2")
    env["HTTP_CONNECTION"] = "close, X-Internal"
    sent = names(request_headers(env, "rid", "/echo"))
    assert "x-internal" not in sent and sent["x-keep"] == "2"


def test_forwarded_headers_are_added() -> None:
    env = environ(HOST="api.example:8080")
    sent = names(request_headers(env, "rid-1", "/catalog"))
    assert sent["x-forwarded-for"] == "203.0.113.9"
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == "api.example:8080"
    assert sent["x-forwarded-prefix"] == "/catalog"
    assert sent["x-request-id"] == "rid-1"
    assert sent["host"] == "api.example:8080"


def test_forwarded_for_appends_to_the_client_chain() -> None:
    sent = names(request_headers(environ(X_FORWARDED_FOR="198.51.100.1"), "r", "/e"))
    assert sent["x-forwarded-for"] == "198.51.100.1, 203.0.113.9"


def test_client_cannot_spoof_headers_the_gateway_sets() -> None:
    env = environ(X_FORWARDED_PROTO="https", X_FORWARDED_HOST="evil", X_REQUEST_ID="theirs")
    sent = request_headers(env, "ours", "/e")
    assert [v for n, v in sent if n.lower() == "x-forwarded-proto"] == ["http"]
    assert [v for n, v in sent if n.lower() == "x-forwarded-host"] == [""]
    assert [v for n, v in sent if n.lower() == "x-request-id"] == ["ours"]


def test_content_type_is_forwarded() -> None:
    env = environ()
    env["CONTENT_TYPE"] = "application/json"
    assert names(request_headers(env, "r", "/e"))["content-type"] == "application/json"


def test_response_hop_by_hop_headers_are_stripped_and_extra_added() -> None:
    upstream = [
        ("Content-Type", "text/plain"),
        ("Connection", "keep-alive, X-Upstream-Secret"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("X-Upstream-Secret", "s"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    out = response_headers(upstream, [("X-Request-ID", "r")])
    assert out == [
        ("Content-Type", "text/plain"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("X-Request-ID", "r"),
    ]
