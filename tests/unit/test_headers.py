"""Header rules of the forwarder: what is dropped, kept and added."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from gateway.headers import (
    classify,
    connection_tokens,
    field_value,
    upstream_head,
)
from tests.unit.inmemory import Upstreams, build, exchanges, service


def sent(
    *raw: tuple[bytes, bytes], peer: str = "203.0.113.9", hops: int = 0
) -> dict[bytes, list[bytes]]:
    """The headers the gateway would send upstream for a client's *raw* headers."""
    head = upstream_head(b"GET", b"/x", classify(list(raw)), peer, hops, b"/echo", "rid-1", 0)
    lines = head.split(b"\r\n")[1:-2]
    out: dict[bytes, list[bytes]] = {}
    for line in lines:
        name, _, value = line.partition(b": ")
        out.setdefault(name.lower(), []).append(value)
    return out


def test_connection_tokens_are_lowercased_and_trimmed() -> None:
    assert connection_tokens(b" Keep-Alive , X-Secret") == {b"keep-alive", b"x-secret"}


@pytest.mark.parametrize(
    "hop",
    [b"Connection", b"Keep-Alive", b"Proxy-Authorization", b"TE", b"Trailer", b"Upgrade"],
)
def test_hop_by_hop_headers_are_not_forwarded(hop: bytes) -> None:
    out = sent((b"Host", b"h"), (hop, b"x"), (b"Accept", b"*/*"))
    assert hop.lower() not in out
    assert out[b"accept"] == [b"*/*"]


def test_headers_named_in_connection_are_dropped() -> None:
    out = sent((b"Host", b"h"), (b"Connection", b"close, X-Internal"), (b"X-Internal", b"1"))
    assert b"x-internal" not in out


def test_connection_naming_host_never_removes_host() -> None:
    out = sent((b"Host", b"api.example"), (b"Connection", b"keep-alive, Host"))
    assert out[b"host"] == [b"api.example"]


def test_forwarded_headers_are_added() -> None:
    out = sent((b"Host", b"api.example:8080"))
    assert out[b"x-forwarded-for"] == [b"203.0.113.9"]
    assert out[b"x-forwarded-proto"] == [b"http"]
    assert out[b"x-forwarded-host"] == [b"api.example:8080"]
    assert out[b"x-forwarded-prefix"] == [b"/echo"]
    assert out[b"x-request-id"] == [b"rid-1"]
    assert out[b"content-length"] == [b"0"]


def test_as_the_edge_the_gateway_states_only_what_it_saw() -> None:
    out = sent(
        (b"Host", b"h"), (b"X-Forwarded-For", b"198.51.100.1"), (b"X-Forwarded-Proto", b"https")
    )
    assert out[b"x-forwarded-for"] == [b"203.0.113.9"]
    assert out[b"x-forwarded-proto"] == [b"http"]


def test_behind_a_trusted_proxy_its_chain_and_scheme_are_kept() -> None:
    out = sent(
        (b"Host", b"h"),
        (b"X-Forwarded-For", b"198.51.100.1"),
        (b"X-Forwarded-Proto", b"https"),
        hops=1,
    )
    assert out[b"x-forwarded-for"] == [b"198.51.100.1, 203.0.113.9"]
    assert out[b"x-forwarded-proto"] == [b"https"]


@pytest.mark.parametrize(
    "name",
    [
        b"X-Forwarded-Proto",
        b"X-Forwarded-Host",
        b"X-Forwarded-Prefix",
        b"X-Request-ID",
        b"Forwarded",
        b"X-Real-IP",
        b"X-Forwarded-Ssl",
        b"X-Forwarded-Protocol",
    ],
)
def test_client_cannot_spoof_headers_the_gateway_sets(name: bytes) -> None:
    out = sent((b"Host", b"h"), (name, b"https"))
    assert b"https" not in out.get(name.lower(), [])


def test_client_framing_is_never_copied() -> None:
    headers = classify([(b"Host", b"h"), (b"Content-Length", b"5"), (b"Expect", b"100-continue")])
    assert (headers.forward, headers.host, headers.host_count) == ([], b"h", 1)
    assert headers.content_length == 5 and headers.expect_continue and not headers.chunked
    head = upstream_head(b"POST", b"/", headers, "p", 0, b"/e", "r", None)
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head


def test_idempotency_key_is_noted_and_forwarded() -> None:
    headers = classify([(b"Idempotency-Key", b"k1")])
    assert headers.idempotency_key and headers.forward == [b"Idempotency-Key: k1"]


@pytest.mark.parametrize(
    "raw",
    [
        [(b"Connection", b"Idempotency-Key"), (b"Idempotency-Key", b"k1")],
        [(b"Idempotency-Key", b"k1"), (b"Connection", b"keep-alive, idempotency-key")],
    ],
)
def test_an_idempotency_key_named_in_connection_makes_nothing_replayable(
    raw: list[tuple[bytes, bytes]],
) -> None:
    # The key is hop-by-hop then, so it never reaches the instance, which could not tell a
    # replay from a second order.
    headers = classify(raw)
    assert headers.forward == []
    assert headers.idempotency_key is False


def test_response_hop_by_hop_headers_are_stripped() -> None:
    upstream = b"\r\n".join(
        [
            b"HTTP/1.1 200 OK",
            b"Content-Type: text/plain",
            b"Connection: keep-alive, X-Upstream-Secret",
            b"Keep-Alive: timeout=5",
            b"Transfer-Encoding: chunked",
            b"X-Request-ID: theirs",
            b"x-upstream-secret: s",
            b"Set-Cookie: a=1",
            b"Set-Cookie: b=2",
            b"",
            b"3\r\nabc\r\n0\r\n\r\n",
        ]
    )
    _, front = build(Upstreams({9001: lambda _: upstream}), [service("svc", 9001)])
    (raw,) = exchanges(front, b"GET /svc/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    head = raw.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert [line for line in head if not line.startswith(b"X-Request-ID")] == [
        b"HTTP/1.1 200 OK",
        b"Content-Type: text/plain",
        b"Set-Cookie: a=1",
        b"Set-Cookie: b=2",
        b"Content-Length: 3",
        b"Connection: close",
    ]


@pytest.mark.parametrize("name", [b"SCRIPT_NAME", b"X_Forwarded_For", b"Remote_User"])
def test_header_names_with_underscores_are_dropped(name: bytes) -> None:
    assert name.lower() not in sent((b"Host", b"h"), (name, b"/echo"))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("catalog-3f2a9c1b7d4e-8001", b"catalog-3f2a9c1b7d4e-8001"),
        ("echo-1\r\nSet-Cookie: stolen=yes", b"echo-1%0D%0ASet-Cookie:%20stolen=yes"),
        ("echo-1\n\nHTTP/1.1 200 OK", b"echo-1%0A%0AHTTP/1.1%20200%20OK"),
        ("экземпляр-1", b"%D1%8D%D0%BA%D0%B7%D0%B5%D0%BC%D0%BF%D0%BB%D1%8F%D1%80-1"),
        ("café", b"caf%C3%A9"),
        ("50%-off", b"50%25-off"),
        ("tab\there\x00", b"tab%09here%00"),
    ],
)
def test_a_value_from_consul_becomes_one_visible_ascii_header_value(
    text: str, value: bytes
) -> None:
    assert field_value(text) == value
    assert all(0x21 <= byte <= 0x7E for byte in value)
    assert unquote(value.decode("ascii")) == text  # nothing is lost
