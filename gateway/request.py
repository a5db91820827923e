"""One client request as the front end parsed it: method, target, headers, and its body.

The front end (:mod:`gateway.front`) fills it from llhttp's callbacks and checks it with
:func:`check` once the headers are complete. It holds no connection: the proxy reads the body
through :attr:`Request.body` and answers through a :class:`gateway.reply.Reply`.
"""

from __future__ import annotations

import re
from random import getrandbits

from gateway.body import BodyBuffer
from gateway.errors import ClientError
from gateway.headers import RequestHeaders, classify

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_NO_HEADERS = RequestHeaders()


class Request:
    """What the client asked for; *body* is None for a request without one."""

    __slots__ = (
        "body",
        "content_length",
        "headers",
        "keep_alive",
        "method",
        "minted_id",
        "peer",
        "raw_headers",
        "request_id",
        "started",
        "target",
        "version",
    )

    def __init__(self, peer: str, started: float) -> None:
        self.peer = peer
        self.started = started  # the event loop's time when its first byte was parsed
        self.target = b""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.method = b"GET"
        self.version = "1.1"
        self.headers = _NO_HEADERS  # until the head is complete
        self.request_id = "-"
        self.minted_id = False  # True when the gateway made the ID (it is then 32 random hex)
        self.keep_alive = True
        self.content_length: int | None = None
        self.body: BodyBuffer | None = None

    @property
    def parsed(self) -> bool:
        """Whether the head is complete (and checked)."""
        return self.headers is not _NO_HEADERS


def check(req: Request, method: bytes, version: str, keep_alive: bool) -> bool:
    """Fill in and validate what llhttp cannot judge alone; return whether a body follows.

    Raises ClientError for a refusal.
    """
    req.method, req.version, req.keep_alive = method, version, keep_alive
    headers = req.headers = classify(req.raw_headers)
    rid = headers.request_id
    if rid and _REQUEST_ID.fullmatch(rid):
        req.request_id = rid.decode()
    else:
        # Unique, not secret: random (reseeded in every worker by gunicorn) costs a tenth of
        # os.urandom's system call.
        req.request_id, req.minted_id = f"{getrandbits(128):032x}", True
    if version != "1.1" and version != "1.0":
        raise ClientError(505, "http_version_not_supported", "only HTTP/1.0 and 1.1 are served")
    if headers.host_count > 1 or (version == "1.1" and not headers.host_count):
        raise ClientError(400, "bad_request", "a request needs one Host header, never two")
    if headers.chunked and version == "1.0":
        raise ClientError(400, "bad_request", "Transfer-Encoding is not allowed in HTTP/1.0")
    if headers.other_coding:
        raise ClientError(501, "not_implemented", "only the chunked transfer coding is served")
    if headers.close:
        req.keep_alive = False  # llhttp ignores "close" beside "keep-alive" in HTTP/1.0
    if method == b"TRACE" or method == b"CONNECT":
        raise ClientError(405, "method_not_allowed", f"{method.decode()} is not allowed")
    target = req.target
    if target[:1] != b"/" or target.find(b"#") >= 0:
        raise ClientError(400, "bad_request", "the request target must be a path")
    req.content_length = headers.content_length
    return headers.chunked or bool(headers.content_length)
