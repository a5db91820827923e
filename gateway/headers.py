"""Header rules of a correct HTTP forwarder, as pure functions over raw header pairs.

What is dropped follows RFC 9110 section 7.6.1 and werkzeug's proxy middleware: the hop-by-hop
headers, and every header that ``Connection`` names. Headers that only this gateway may set
(``X-Forwarded-Proto/Host/Prefix``, and the ``Forwarded``, ``X-Real-IP``, ``X-Forwarded-Ssl``
family that some servers trust for the scheme) are dropped from clients and set here.
``X-Forwarded-For`` is appended to only behind trusted proxies. Framing (``Content-Length``, ``Transfer-Encoding``) is never
copied: the gateway frames each message itself.

Header names with an underscore are dropped, as nginx does by default: WSGI and CGI servers
cannot tell ``X_Forwarded_For`` from ``X-Forwarded-For``, and some trust ``SCRIPT_NAME``.

A ``tracestate`` (all its fields joined) is passed on within the W3C limits, 32 members and
512 characters, cut by whole members beyond them (:func:`discovery.tracing.limit_tracestate`).

Everything works on bytes as llhttp delivers them, and names are lowered once per header; no
process-wide cache keyed by client input exists.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from discovery.tracing import TRACESTATE_CHARS, TRACESTATE_MEMBERS, limit_tracestate

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by this gateway (the edge); a client's own values are never passed on.
SET_BY_GATEWAY = frozenset(
    {
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-prefix",
        b"x-forwarded-port",
        b"x-forwarded-ssl",
        b"x-forwarded-protocol",
        b"x-forwarded-scheme",
        b"x-url-scheme",
        b"x-real-ip",
        b"forwarded",
        b"front-end-https",
    }
)
_DROPPED = HOP_BY_HOP | SET_BY_GATEWAY | {b"content-length", b"expect"}
# Tokens of Connection that name no other header.
CONNECTION_OPTIONS = frozenset({b"keep-alive", b"close", b""})


class RequestHeaders:
    """A client's headers, sorted into what the gateway reads and what it passes on."""

    # A plain class with its own __init__, not a dataclass: built once per request, and a
    # dataclass's generated __init__ would stay interpreted in a compiled build.
    __slots__ = (
        "chunked",
        "close",
        "content_length",
        "expect_continue",
        "forward",
        "forwarded_for",
        "forwarded_proto",
        "host",
        "host_count",
        "idempotency_key",
        "other_coding",
        "request_id",
        "traceparent",
        "traceparent_count",
        "tracestate",
    )

    def __init__(self) -> None:
        self.forward: list[bytes] = []  # b"Name: value" lines to pass on
        self.host = b""
        self.host_count = 0
        self.content_length: int | None = None
        self.chunked = False
        self.other_coding = False  # a transfer coding besides one final "chunked"
        self.close = False  # "Connection: close" (it wins over keep-alive in any version)
        self.expect_continue = False
        self.request_id = b""
        self.idempotency_key = False
        self.forwarded_for = b""
        self.forwarded_proto = b""
        # W3C Trace Context: two traceparent fields make it invalid; tracestate fields are a
        # list.
        self.traceparent = b""
        self.traceparent_count = 0
        self.tracestate = b""


def connection_tokens(value: bytes) -> frozenset[bytes]:
    """The header names listed in a ``Connection`` header, lowercased."""
    return frozenset(t.strip().lower() for t in value.split(b","))


def classify(raw: list[tuple[bytes, bytes]]) -> RequestHeaders:
    """Sort a client's headers (llhttp already refused malformed framing)."""
    h = RequestHeaders()
    named: frozenset[bytes] = frozenset()
    for name, value in raw:
        lower = name.lower()
        if lower not in _DROPPED and lower not in _READ:
            # Dropped as nginx's underscores_in_headers off does: in WSGI and CGI, X_Foo and
            # X-Foo are the same variable, and SCRIPT_NAME is a real one that servers trust.
            if name.find(b"_") < 0:  # find(): "in" first tries the needle as an int
                h.forward.append(name + b": " + value)
        elif lower == b"host":
            h.host, h.host_count = value, h.host_count + 1
        elif lower == b"content-length":
            h.content_length = int(value)
        elif lower == b"transfer-encoding":
            # llhttp insists on a final "chunked"; any coding before it (gzip, chunked) or a
            # second field is one the gateway would forward wrongly decoded: refused.
            h.other_coding = h.chunked or value.strip().lower() != b"chunked"
            h.chunked = True
        elif lower == b"connection":
            tokens = connection_tokens(value)
            h.close = h.close or b"close" in tokens
            named |= tokens - CONNECTION_OPTIONS
        elif lower == b"expect":
            h.expect_continue = value.lower() == b"100-continue"
        elif lower == b"x-request-id":
            h.request_id = value
        elif lower == b"x-forwarded-for":
            h.forwarded_for = value if not h.forwarded_for else h.forwarded_for + b", " + value
        elif lower == b"x-forwarded-proto":
            h.forwarded_proto = value.strip().lower()
        elif lower == b"idempotency-key":
            h.idempotency_key = True
            h.forward.append(name + b": " + value)
        elif lower == b"traceparent":
            h.traceparent, h.traceparent_count = value, h.traceparent_count + 1
        elif lower == b"tracestate":
            h.tracestate = value if not h.tracestate else h.tracestate + b"," + value
    if named - {b"host"}:
        h.forward = [line for line in h.forward if line.split(b":", 1)[0].lower() not in named]
        # A key that Connection names is dropped on the way: the instance could not tell a
        # replay from a new request, so the request may not be replayed after all.
        h.idempotency_key = h.idempotency_key and b"idempotency-key" not in named
    return h


def forwarded_tracestate(value: bytes) -> bytes:
    """*value* within the W3C limits (32 members, 512 characters), cut by whole members.

    Applied only to a ``tracestate`` that is passed on, so only with a valid ``traceparent``
    (the spec forbids parsing it otherwise). An upstream may refuse a field over 8 KiB.
    """
    if len(value) <= TRACESTATE_CHARS and value.count(b",") < TRACESTATE_MEMBERS:
        return value
    return limit_tracestate(value.decode("latin-1")).encode("latin-1")


_READ = frozenset(
    {
        b"host",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"idempotency-key",
        b"traceparent",
        b"tracestate",
    }
)


def upstream_head(
    method: bytes,
    target: bytes,
    headers: RequestHeaders,
    peer: str,
    trusted_hops: int,
    prefix: bytes,
    request_id: str,
    length: int | None,
    trace: bytes = b"",
) -> bytes:
    """The request line and headers to send upstream; *length* None means chunked.

    *trace* is this hop's ``traceparent`` line, and a ``tracestate`` line if one passes on.

    As the edge (no trusted hops) the gateway states only what it saw: the peer's address and
    plain http. Behind trusted proxies it keeps their ``X-Forwarded-For`` chain and scheme.
    """
    forwarded_for, proto = peer.encode(), b"http"
    if trusted_hops:
        if headers.forwarded_for:
            forwarded_for = headers.forwarded_for + b", " + forwarded_for
        if headers.forwarded_proto in (b"http", b"https"):
            proto = headers.forwarded_proto
    lines = [
        method + b" " + target + b" HTTP/1.1",
        b"Host: " + headers.host,
        *headers.forward,
        b"X-Forwarded-For: " + forwarded_for,
        b"X-Forwarded-Proto: " + proto,
        b"X-Forwarded-Host: " + headers.host,
        b"X-Forwarded-Prefix: " + prefix,
        b"X-Request-ID: " + request_id.encode(),
    ]
    if trace:
        lines.append(trace)
    lines.append(
        b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    )
    return b"\r\n".join(lines) + b"\r\n\r\n"


# An upstream's answer: hop-by-hop and framing headers are dropped (the gateway frames the
# answer itself), and its own X-Request-ID gives way to the gateway's. The answer's fields are
# sorted as llhttp hands them over (gateway.upstream.UpstreamConnection.on_header).
RESPONSE_DROPPED = HOP_BY_HOP | {b"content-length", b"x-request-id"}


def without_named(lines: list[bytes], named: frozenset[bytes]) -> list[bytes]:
    """*lines* (``b"Name: value"``) but those whose name a ``Connection`` header listed."""
    named = named - CONNECTION_OPTIONS
    return [line for line in lines if line[: line.find(b":")].lower() not in named]


# Visible ASCII but "%": what a value from Consul keeps as it is in a header field.
_FIELD_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if c != ord("%"))


@lru_cache(maxsize=4096)
def field_value(text: str) -> bytes:
    """*text* (a value from Consul, such as an instance ID) as one header field value.

    Visible ASCII stays as it is; anything else (CR, LF, spaces, ``%``, characters outside
    Latin-1) is percent-encoded as UTF-8, as in a URL. Written raw, a CR LF would end the
    header early and let whoever registers in Consul add headers, or a whole answer; a
    character outside Latin-1 could not be written at all. The values are few and change
    only with the catalog, so the encoding is cached: a hit costs less than an encode.
    """
    return quote(text, safe=_FIELD_SAFE).encode("ascii")
