"""One client request as the front end parsed it, with its body as it arrives.

The front end (:mod:`gateway.front`) fills it from llhttp's callbacks; the proxy reads the body
either whole (small bodies, which may then be retried) or as a stream, and writes the answer
through the connection. Client-side faults are their own exception types, so they are never
blamed on an upstream.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from random import getrandbits
from typing import TYPE_CHECKING

from discovery.tracing import Hop
from gateway.errors_json import error_answer, response_head
from gateway.headers import RequestHeaders, classify

if TYPE_CHECKING:
    from gateway.front import ClientConnection

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class ClientError(Exception):
    """A request the gateway refuses, with the status and error code to answer.

    *aborted* marks a client that gave up mid-request (a body cut short or stalled), which is
    counted as a client abort.
    """

    def __init__(self, status: int, code: str, detail: str, aborted: bool = False) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.aborted = status, code, detail, aborted


class ClientGone(Exception):
    """The client closed its connection (a client abort, nginx's 499)."""


class Request:
    """Method, target, headers and body of one request, and whether it was answered."""

    __slots__ = (
        "_body",
        "_error",
        "_stopped",
        "_waiter",
        "answered",
        "attempts",
        "buffered",
        "complete",
        "conn",
        "content_length",
        "has_body",
        "headers",
        "keep_alive",
        "label",
        "method",
        "raw_headers",
        "received",
        "request_id",
        "reusable",
        "sent",
        "started",
        "status",
        "target",
        "trace",
        "upstream",
        "version",
    )

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.started = conn.loop.time()
        self.target = b""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.method = b"GET"
        self.version = "1.1"
        self.headers: RequestHeaders | None = None
        self.request_id = "-"
        self.keep_alive = True
        self.content_length: int | None = None
        self.has_body = False
        self.complete = False
        self.answered = False
        self.status = 0  # of the answer, for metrics
        self.label = "-"  # the routed service, for metrics
        # For the access log and the trace span: this hop's trace, the last instance tried,
        # how many were, and the bytes written to the client.
        self.trace: Hop | None = None
        self.upstream = "-"
        self.attempts = self.sent = 0
        self.reusable = True  # False once the connection cannot carry another request
        self.buffered = self.received = 0
        self._body: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._stopped = False

    def headers_complete(self, method: bytes, version: str, keep_alive: bool) -> None:
        """Validate what llhttp cannot judge alone; raise ClientError for a refusal."""
        self.method, self.version, self.keep_alive = method, version, keep_alive
        headers = self.headers = classify(self.raw_headers)
        rid = headers.request_id
        # Unique, not secret: random (reseeded in every worker by gunicorn) costs a tenth of
        # os.urandom's system call.
        self.request_id = (
            rid.decode() if rid and _REQUEST_ID.match(rid) else f"{getrandbits(128):032x}"
        )
        if version not in ("1.1", "1.0"):
            raise ClientError(505, "http_version_not_supported", "only HTTP/1.0 and 1.1 are served")
        if headers.host_count > 1 or (version == "1.1" and not headers.host_count):
            raise ClientError(400, "bad_request", "a request needs one Host header, never two")
        if headers.chunked and version == "1.0":
            raise ClientError(400, "bad_request", "Transfer-Encoding is not allowed in HTTP/1.0")
        if headers.other_coding:
            raise ClientError(501, "not_implemented", "only the chunked transfer coding is served")
        if headers.close:
            self.keep_alive = False  # llhttp ignores "close" beside "keep-alive" in HTTP/1.0
        if method in (b"TRACE", b"CONNECT"):
            raise ClientError(405, "method_not_allowed", f"{method.decode()} is not allowed")
        if not self.target.startswith(b"/") or b"#" in self.target:
            raise ClientError(400, "bad_request", "the request target must be a path")
        self.content_length = headers.content_length
        self.has_body = headers.chunked or bool(headers.content_length)
        if not self.has_body:
            self.complete = True

    def keeps_alive(self) -> bool:
        """Whether the connection will carry another request after this one's answer.

        Not if the client asked to close, the body was not read to its end (an early answer:
        what remains cannot be told from a next request), or the worker is stopping.
        """
        return self.keep_alive and self.complete and self.reusable and not self.conn.server.closing

    def head(
        self, status_line: bytes, lines: list[bytes], length: int | None, chunked: bool
    ) -> bytes:
        """The head of this request's answer, with the connection's fate spelled out."""
        return response_head(status_line, lines, length, self.keeps_alive(), chunked, self.version)

    def answer(self, status: int, data: bytes) -> None:
        """Write (the start of) this request's answer; *status* is kept for metrics and logs."""
        self.answered = True
        self.status = status
        self.sent += len(data)
        self.conn.write(data)

    def error(
        self,
        code: int,
        error_code: str,
        detail: str,
        extra_headers: tuple[bytes, ...] = (),
        **extra: object,
    ) -> None:
        """Answer with a JSON error such as ``{"error": "no_passing_instance", ...}``."""
        data = error_answer(
            code, error_code, detail, self.request_id, self.keeps_alive(), self.version,
            extra_headers, self.method == b"HEAD", **extra,
        )  # fmt: skip
        self.answer(code, data)

    # -- filled by the front end ------------------------------------------------------------

    def feed(self, data: bytes) -> int:
        """Add body bytes; return how many arrived in all."""
        self._body.append(data)
        self.buffered += len(data)
        self.received += len(data)
        self._wake()
        return self.received

    def finish(self) -> None:
        """The body ended."""
        self.complete = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The body will not be completed (client gone, too slow, too large)."""
        if not self.complete:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = self.conn.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    # -- read by the proxy ------------------------------------------------------------------

    def _start_body(self) -> None:
        headers = self.headers
        if headers is not None and headers.expect_continue and not self.answered:
            headers.expect_continue = False
            if self.version == "1.1":  # an HTTP/1.0 client's expectation is ignored (RFC 9110)
                self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.conn.resume_reading()

    async def read_body(self, limit: int) -> bytes | None:
        """The whole body if it is at most *limit* bytes, else None: then use :meth:`chunks`."""
        if self.complete and self._error is None:
            return self._take()
        self._start_body()
        if self.content_length is not None and self.content_length > limit:
            return None
        while not self.complete:
            if self.buffered > limit:
                return None
            await self._wait()
        return self._take() if self.buffered <= limit else None

    def _take(self) -> bytes:
        data = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self.buffered = 0
        self.conn.resume_reading()
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, until it ends or :meth:`stop_body` is called; raises
        ClientGone or ClientError if it never ends."""
        self._start_body()
        while not self._stopped:
            if self._body:
                yield self._take()
            elif self.complete:
                return
            else:
                await self._wait()

    def stop_body(self) -> None:
        """The body is no longer wanted (the instance answered early): end :meth:`chunks`."""
        self._stopped = True
        self._wake()
