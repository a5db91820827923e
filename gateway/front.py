"""The client side of the gateway: HTTP/1.1 connections on asyncio, parsed by llhttp.

httptools (Node.js's llhttp) does all the parsing and refuses what it finds ambiguous:
Content-Length with Transfer-Encoding, duplicate lengths, obs-fold, bare CR or LF, NUL and bad
chunks. This module adds what a parser cannot know: limits (414, 431, 413, and chunk framing,
see gateway.framing), deadlines for the headers, between body reads, for a client that stops
reading and for idle keep-alive connections, a connection limit per worker, and pipelined
requests answered in order. A client that leaves cancels its request's task; one answered
before its body was read gets a lingering close.

Deadlines are checked by one sweep per worker every half second rather than a timer per
request, so the hot path only stores a number (as nginx's timer tree is touched only on change).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

import httptools

from gateway.errors_json import error_answer
from gateway.framing import MAX_FRAMING, framing_excess
from gateway.request import ClientError, ClientGone, Request
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[None]]

MAX_TARGET = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
MAX_PIPELINED = 32  # requests parsed ahead of the one being answered
HIGH_WATER = 256 * 1024  # body bytes held for a handler before the client is paused
# Answer bytes waiting for a slow client before a streamed relay stops taking more from the
# instance (uvloop's default, 64 KiB, is four times that); see gateway.upstream.HIGH_WATER.
RELAY_HIGH_WATER = 16 * 1024
SWEEP_INTERVAL = 0.5
# After an answer given before the body was read, what the client still sends is read and
# dropped for up to LINGER_TIME, LINGER_TIMEOUT at most between reads (nginx's lingering_time
# and lingering_timeout), before the close.
LINGER_TIME = 30.0
LINGER_TIMEOUT = 5.0
# What the timer of a connection is waiting for; LINGER: the end of a lingering close.
NONE, HEADERS, BODY, IDLE, LINGER = range(5)


class FrontServer:
    """The connections of one worker, their limit, and the deadline sweep."""

    def __init__(self, settings: GatewaySettings, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self.connections: set[ClientConnection] = set()
        self.closing = False
        self._sweeper: asyncio.TimerHandle | None = None

    def protocol(self) -> ClientConnection:
        """The protocol factory for ``loop.create_server``."""
        return ClientConnection(self)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin the deadline sweep."""
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for conn in list(self.connections):
            # A paused reader is waiting for the gateway, not the client: no body deadline.
            if conn.timer != NONE and now > conn.deadline and not conn.read_paused:
                conn.on_deadline()
            elif conn.write_paused and now > conn.send_deadline:
                conn.abort("the client stopped reading its answer")
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep, loop)

    def begin_shutdown(self) -> None:
        """Stop keeping connections alive; close the idle ones now."""
        self.closing = True
        for conn in list(self.connections):
            if conn.current is None and conn.timer in (IDLE, HEADERS, LINGER) and not conn.queue:
                conn.close()

    def stop(self) -> None:
        """Close every connection at once (after the graceful period)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.abort("the worker is stopping")


class ClientConnection(asyncio.Protocol):
    """One client connection; the llhttp callbacks below build :class:`Request` objects."""

    def __init__(self, server: FrontServer) -> None:
        self.server = server
        self.settings = server.settings
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.parser = httptools.HttpRequestParser(self)
        self.parsing: Request | None = None
        self.current: Request | None = None
        self._task: asyncio.Task[None] | None = None  # the one answering self.current
        self.queue: deque[Request] = deque()
        self.timer, self.deadline = HEADERS, 0.0
        self.read_paused = self.write_paused = self.lost = self.eof = False
        self.send_deadline = self.linger_end = 0.0
        self._drain: asyncio.Future[None] | None = None
        self._header_bytes = 0
        self._head_bytes = 0  # of the request head being received, counted before parsing
        self._framing = self._chunks = 0  # see gateway.framing
        self._next_pending = False  # the next pipelined request waits for the client to read
        self.refused: ClientError | None = None  # answered after the requests before it
        self.refused_request: Request | None = None
        # Above the buffered-body size, so a handler reading a body whole is never paused.
        self.high_water = max(HIGH_WATER, self.settings.buffer_body + 1)

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        if len(self.server.connections) >= self.settings.max_connections:
            transport.write(
                error_answer(
                    503, "too_many_connections", "the gateway is at its connection limit", "-"
                )
            )
            transport.close()
            self.lost = True
            return
        self.server.connections.add(self)
        self.deadline = self.loop.time() + self.settings.header_timeout

    def data_received(self, data: bytes) -> None:
        if self.timer == LINGER:
            self.deadline = min(self.loop.time() + LINGER_TIMEOUT, self.linger_end)
            return  # a lingering close: dropped unread
        if self.refused is not None:
            return  # a request was refused; what follows it is never read
        req = self.parsing
        chunked: Request | None = None
        if req is None or req.headers is None:
            # httptools gathers a header's pieces itself: bound the head before feeding it.
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end
            if self._head_bytes > MAX_TARGET + MAX_HEADER_BYTES:
                self._refuse(ClientError(431, "headers_too_large", "the request head is too large"))
                return
        elif req.headers.chunked:
            chunked, received, self._chunks = req, req.received, 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # CONNECT, or an Upgrade request: this gateway tunnels neither.
            self._refuse(
                ClientError(
                    501, "not_implemented", "CONNECT and protocol upgrades are not supported"
                )
            )
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ClientError):
                self._refuse(cause)
            else:
                log.exception("request handling failed", exc_info=cause)
                self._refuse(
                    ClientError(500, "internal_error", "the gateway failed to read the request")
                )
        except httptools.HttpParserError as exc:
            log.debug("malformed request from %s: %s", self.peer, exc)
            self._refuse(ClientError(400, "bad_request", "the request is not valid HTTP/1.1"))
        else:
            if chunked is not None and self.parsing is chunked:  # its body is still arriving
                self._framing = framing_excess(
                    self._framing, len(data), chunked.received - received, self._chunks
                )
                if self._framing > MAX_FRAMING:
                    self._refuse(
                        ClientError(
                            400, "bad_request",
                            f"over {MAX_FRAMING} bytes of chunk extensions and trailer fields",
                        )
                    )  # fmt: skip

    def eof_received(self) -> bool:
        """The client closed its side: it left, unless a body it was sending is cut short.

        A client that closes and one that only half-closes send the same FIN. As nginx and
        Envoy do, a FIN while an answer is pending is taken as the client leaving: the
        connection closes and its request is cancelled (connection_lost), so that clients that
        send and close cannot keep attempts and in-flight slots busy for nobody.
        """
        self.eof = True
        if self.timer == LINGER:
            return False  # what the client sent after its answer has all been read: close
        req = self.parsing
        if req is not None and req.headers is not None and req is self.current:
            req.reusable = False
            req.fail(
                ClientError(400, "bad_request", "the body ended before its declared length", True)
            )
            return True  # keep the socket open to send that answer
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.connections.discard(self)
        gone = ClientGone("the client closed the connection")
        for req in (self.current, self.parsing):
            if req is not None:
                req.fail(gone)
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(gone)
        if self.current is not None and self._task is not None:
            # Nobody is left to answer: stop the attempt wherever it waits, which closes its
            # upstream connection and frees its in-flight slot (nginx logs such a request 499).
            self._task.cancel()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.send_deadline = self.loop.time() + self.settings.body_timeout

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self._next_pending and self.current is None and not self.lost:
            self._next()

    # -- llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.parsing = Request(self)
        self._header_bytes = self._framing = 0
        if self.timer == IDLE or self.timer == NONE:
            self.timer, self.deadline = HEADERS, self.loop.time() + self.settings.header_timeout

    def on_url(self, url: bytes) -> None:
        req = self.parsing
        assert req is not None
        req.target += url
        if len(req.target) > MAX_TARGET:
            raise ClientError(414, "uri_too_long", f"the request target is over {MAX_TARGET} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.parsing
        assert req is not None
        if req.headers is not None:
            # A trailer field: skipped as nginx does (never merged into the headers, never
            # forwarded); data_received bounds its size.
            return
        self._header_bytes += len(name) + len(value) + 4
        if len(req.raw_headers) >= MAX_HEADERS or self._header_bytes > MAX_HEADER_BYTES:
            raise ClientError(
                431, "headers_too_large",
                f"at most {MAX_HEADERS} header fields and {MAX_HEADER_BYTES} bytes of headers",
            )  # fmt: skip
        req.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        req = self.parsing
        assert req is not None
        self._head_bytes = 0
        if len(self.queue) >= MAX_PIPELINED:
            raise ClientError(429, "too_many_requests", f"over {MAX_PIPELINED} pipelined requests")
        req.headers_complete(
            self.parser.get_method(),
            self.parser.get_http_version(),
            self.parser.should_keep_alive(),
        )
        if req.content_length is not None and req.content_length > self.settings.max_body_size:
            raise ClientError(
                413, "body_too_large", f"the body is over {self.settings.max_body_size} bytes"
            )
        if req.has_body:
            self.timer, self.deadline = BODY, self.loop.time() + self.settings.body_timeout
        else:
            self.timer = NONE
        if self.current is None:
            self._dispatch(req)
        else:
            self.queue.append(req)  # pipelined: answered after the ones before it
            self._pause_reading()

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_body(self, data: bytes) -> None:
        req = self.parsing
        assert req is not None
        self.deadline = self.loop.time() + self.settings.body_timeout
        if req.feed(data) > self.settings.max_body_size:
            raise ClientError(
                413, "body_too_large", f"the body is over {self.settings.max_body_size} bytes"
            )
        if req.buffered > self.high_water:
            self._pause_reading()

    def on_message_complete(self) -> None:
        req = self.parsing
        assert req is not None
        self.parsing = None
        self.timer = NONE
        req.finish()

    # -- requests and answers ---------------------------------------------------------------

    def _dispatch(self, req: Request) -> None:
        self.current = req
        self._task = self.loop.create_task(self._serve(req))

    async def _serve(self, req: Request) -> None:
        try:
            await self.server.handler(req)
        except ClientGone:
            pass
        except asyncio.CancelledError:
            if not self.lost:
                raise
            return  # cancelled by connection_lost: the client is gone
        except ClientError as exc:
            self.answer_error(req, exc)
        except Exception:
            log.exception("request %s failed", req.request_id)
            self.answer_error(req, ClientError(500, "internal_error", "the gateway failed"))
        self._done(req)

    def _done(self, req: Request) -> None:
        self.current = self._task = None
        if self.lost or self.transport is None or self.transport.is_closing():
            return  # aborted or closed: no later request may still reach an upstream
        if not req.complete:
            self.linger()  # answered before its body was read: the client may still send it
            return
        if not (req.keep_alive and req.reusable) or self.server.closing:
            self.close()
            return
        self._next()

    def _next(self) -> None:
        """Answer the next pipelined request, or the refusal, or wait for one; never while the
        client is not reading what it was sent (resume_writing calls back)."""
        if self.write_paused:
            self._next_pending = True
            return
        self._next_pending = False
        if self.queue:
            self._dispatch(self.queue.popleft())
            self.resume_reading()  # its body may still be arriving
        elif self.refused is not None:
            self._send_refusal()
        elif self.eof:
            self.close()
        else:
            self.resume_reading()
            if self.parsing is None:
                self.timer, self.deadline = IDLE, self.loop.time() + self.settings.keepalive_timeout

    def _refuse(self, exc: ClientError) -> None:
        """A request that cannot be parsed or is over a limit: refuse it, then close.

        If it is the request being answered (its body broke), its handler answers. Otherwise
        the requests before it are answered first, in order, and the refusal comes last.
        """
        self.timer = NONE
        req = self.parsing
        if req is not None and req.headers is None:
            # Known once the request line's method is parsed: a refused HEAD gets a head only.
            req.method = self.parser.get_method()
        self.parser = httptools.HttpRequestParser(self)  # never fed again: the connection ends
        if req is not None and req is self.current:
            req.reusable = False
            req.fail(exc)  # the handler waiting for the body answers this itself
            if req.answered:
                self.abort(str(exc))
            return
        self.refused = exc
        self.refused_request = req
        if self.current is None and not self.queue:
            self._send_refusal()

    def _send_refusal(self) -> None:
        assert self.refused is not None
        self.answer_error(self.refused_request, self.refused)
        self.linger()  # the refused request may be followed by more of it

    def answer_error(self, req: Request | None, exc: ClientError) -> None:
        """Send a JSON error unless an answer has started (then the connection is cut)."""
        if req is not None and req.answered:
            self.abort(str(exc))
            return
        if req is None or req is self.refused_request:  # the connection ends after a refusal
            rid, head_only = "-", False
            if req is not None:
                rid, head_only = req.request_id, req.method == b"HEAD"
            self.write(error_answer(exc.status, exc.code, exc.detail, rid, head_only=head_only))
            return
        req.error(exc.status, exc.code, exc.detail)

    def on_deadline(self) -> None:
        """A deadline passed: answer 408 where a request had begun, else just close."""
        timer, self.timer = self.timer, NONE
        req = self.parsing
        if timer == BODY and req is not None and req is self.current:
            req.fail(ClientError(408, "request_timeout", "the request body stopped arriving", True))
            req.reusable = False
        elif timer == HEADERS and req is not None:
            self._refuse(
                ClientError(408, "request_timeout", "the request headers did not arrive in time")
            )
        else:
            self.close()

    def write(self, data: bytes) -> None:
        """Write to the client unless it is gone."""
        if not self.lost and self.transport is not None:
            self.transport.write(data)

    def relaying(self) -> None:
        """A streamed answer follows: wait for a slow client from RELAY_HIGH_WATER on."""
        if self.transport is not None and not self.lost:
            self.transport.set_write_buffer_limits(RELAY_HIGH_WATER)

    async def drain(self) -> None:
        """Wait while the client's socket buffer is full."""
        if self.lost:
            raise ClientGone("the client closed the connection")
        if self.write_paused:
            self._drain = self.loop.create_future()
            await self._drain

    def _pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the client again (called as a handler consumes the body)."""
        if self.read_paused and self.transport is not None and not self.queue:
            self.read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        """Close after what was written is flushed."""
        if self.transport is not None:
            self.transport.close()

    def linger(self) -> None:
        """Close once the client stops sending: first end the writing side (after what was
        written is flushed), then read and drop what still comes, within LINGER_TIME.

        Closing a socket with unread bytes resets the connection, and a reset can destroy an
        answer the client has not read yet (the 413 for an upload still being sent).
        """
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
            return
        if self.eof or not transport.can_write_eof():
            self.close()
            return
        self.queue.clear()
        self.parsing = None
        now = self.loop.time()
        self.timer, self.linger_end = LINGER, now + LINGER_TIME
        self.deadline = now + LINGER_TIMEOUT
        transport.write_eof()
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()

    def abort(self, why: str) -> None:
        """Cut the connection at once (an answer had started, or a client misbehaved)."""
        log.debug("closing a connection from %s: %s", self.peer, why)
        if self.transport is not None:
            self.transport.abort()
