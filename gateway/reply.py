"""The one way an answer reaches a client: head, body, chunked framing and byte counting.

A :class:`Reply` is handed to the proxy with each request. It writes through a narrow
:class:`ClientStream` (write, wait for a slow reader, cut), as uvicorn's request cycle gets a
transport and a flow rather than its whole protocol; the front end implements it. Errors the
gateway makes itself, whole answers relayed in one write and streamed answers all go through
here, so the status kept for metrics and the bytes counted for the log are always the ones
sent.
"""

from __future__ import annotations

from typing import Protocol

from gateway.answers import error_body, response_head, status_line
from gateway.errors import Refusal
from gateway.framing import chunk
from gateway.request import Request


class ClientStream(Protocol):
    """What a reply needs of the client's connection."""

    def write(self, data: bytes) -> None:
        """Write to the client unless it is gone."""

    async def drain(self) -> None:
        """Wait while the client is not reading; raise ClientGone if it left."""

    def relaying(self) -> None:
        """A streamed answer follows: wait for a slow reader early."""

    def keeps_alive(self, request: Request) -> bool:
        """Whether the connection may carry another request after *request*'s answer."""

    def abort(self, why: str) -> None:
        """Cut the connection at once (an answer had started and cannot be finished)."""


class Reply:
    """The answer to one request, as it is written."""

    __slots__ = (
        "_stream",
        "chunked",
        "client_left",
        "request",
        "reusable",
        "sent",
        "started",
        "status",
    )

    def __init__(self, stream: ClientStream, request: Request) -> None:
        self._stream = stream
        self.request = request
        self.status = 0  # of the answer, for metrics and the log
        self.sent = 0  # bytes written to the client
        self.started = False  # a head was written: an error can no longer be answered
        self.chunked = False
        self.reusable = True  # False when the answer's end is the connection's (HTTP/1.0)
        self.client_left = False  # the client closed first: its task is being cancelled

    def keeps_alive(self) -> bool:
        """Whether the connection carries another request after this answer."""
        return self.reusable and self._stream.keeps_alive(self.request)

    def _head(self, line: bytes, lines: list[bytes], length: int | None, chunked: bool) -> bytes:
        return response_head(line, lines, length, self.keeps_alive(), chunked, self.request.version)

    def _write(self, status: int, data: bytes) -> None:
        self.started = True
        self.status = status
        self.sent += len(data)
        self._stream.write(data)

    def error(self, refusal: Refusal) -> None:
        """A JSON error, such as ``{"error": "no_passing_instance", ...}``; head only to HEAD."""
        req = self.request
        status = refusal.status
        body = error_body(status, refusal.code, refusal.detail, req.request_id, **refusal.extra)
        lines = [b"Content-Type: application/json", b"X-Request-ID: " + req.request_id.encode()]
        lines += refusal.headers
        head = self._head(status_line(status), lines, len(body), False)
        self._write(status, head if req.method == b"HEAD" else head + body)

    def whole(self, status: int, line: bytes, lines: list[bytes], body: bytes | None) -> None:
        """An answer in one write: *body* None for a head only (to HEAD, 204, 304)."""
        if body is None:
            self._write(status, self._head(line, lines, None, False))
        else:
            self._write(status, self._head(line, lines, len(body), False) + body)

    def start(self, status: int, line: bytes, lines: list[bytes], length: int | None) -> None:
        """The head of an answer whose body follows in pieces (:meth:`send`, :meth:`end`).

        A body of unknown length is chunked to an HTTP/1.1 client; an HTTP/1.0 client learns
        its end from the connection's close.
        """
        self.chunked = length is None and self.request.version == "1.1"
        if length is None and not self.chunked:
            self.reusable = False
        self._write(status, self._head(line, lines, length, self.chunked))
        self._stream.relaying()

    async def send(self, data: bytes) -> None:
        """One piece of the body, at the client's pace."""
        if self.chunked:
            data = chunk(data)
        self.sent += len(data)
        self._stream.write(data)
        await self._stream.drain()

    def end(self) -> None:
        """The body is whole."""
        if self.chunked:
            self.sent += 5
            self._stream.write(b"0\r\n\r\n")

    def cut(self, why: str) -> None:
        """The body cannot be finished: the client sees the connection end mid-answer."""
        self._stream.abort(why)
