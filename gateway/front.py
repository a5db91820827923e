"""The client side of the gateway: HTTP/1.1 connections on asyncio, parsed by llhttp.

httptools (Node.js's llhttp) does all the parsing and refuses what it finds ambiguous:
Content-Length with Transfer-Encoding, duplicate lengths, obs-fold, bare CR or LF, NUL and bad
chunks. This module adds what a parser cannot know: limits (414, 431, 413, and chunk framing,
see gateway.framing), deadlines for the headers, between body reads, for a client that stops
reading and for idle keep-alive connections, a connection limit per worker, and pipelined
requests answered in order. A client that leaves cancels its request's task; one answered
before its body was read gets a lingering close.

Each request is handed to the handler with a :class:`gateway.reply.Reply`, through which the
answer is written; the connection is the reply's :class:`gateway.reply.ClientStream` and the
body's :class:`gateway.body.Flow`, and the handler sees nothing else of it.

Deadlines are checked by one sweep per worker every half second rather than a timer per
request, so the hot path only stores a number (as nginx's timer tree is touched only on change).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

import httptools

from gateway.answers import error_answer
from gateway.body import BodyBuffer
from gateway.errors import ClientError, ClientGone, Refusal
from gateway.framing import MAX_FRAMING, framing_excess
from gateway.reply import Reply
from gateway.request import Request, check
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
Handler = Callable[[Request, Reply], Awaitable[None]]

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


class ClientState(enum.IntEnum):
    """Where a client connection is, and so what its deadline (if any) is waiting for."""

    HEAD = 1  # a request head is awaited or arriving (header_timeout)
    BODY = 2  # the body of the request being answered is arriving (body_timeout per read)
    BUSY = 3  # a request is being answered; nothing of the client's is awaited
    IDLE = 4  # between requests on a kept-alive connection (keepalive_timeout)
    LINGER = 5  # answered early: what the client still sends is dropped (LINGER_TIMEOUT)
    CLOSED = 6  # the connection is gone


HEAD, BODY, BUSY, IDLE, LINGER, CLOSED = ClientState  # the hot path compares these often
_TIMED = frozenset({HEAD, BODY, IDLE, LINGER})


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
            if conn.state in _TIMED and now > conn.deadline and not conn.read_paused:
                conn.on_deadline()
            elif conn.write_paused and now > conn.send_deadline:
                conn.abort("the client stopped reading its answer")
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep, loop)

    def begin_shutdown(self) -> None:
        """Stop keeping connections alive; close the idle ones now."""
        self.closing = True
        for conn in list(self.connections):
            if conn.current is None and conn.state in (IDLE, HEAD, LINGER) and not conn.queue:
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
        self.state, self.deadline = HEAD, 0.0
        self.parsing: Request | None = None  # the request whose bytes are arriving
        self.current: Reply | None = None  # the answer being made
        self._task: asyncio.Task[None] | None = None  # the one making it
        self.queue: deque[Request] = deque()  # pipelined, parsed ahead of their turn
        self.read_paused = self.write_paused = self.eof = False
        self.send_deadline = self.linger_end = 0.0
        self._drain: asyncio.Future[None] | None = None
        self._header_bytes = 0
        self._head_bytes = 0  # of the request head being received, counted before parsing
        self._framing = self._chunks = 0  # see gateway.framing
        self._next_pending = False  # the next pipelined request waits for the client to read
        self._continue_owed = False  # "100 Continue" is sent when the handler wants the body
        self.refused: ClientError | None = None  # answered after the requests before it
        self.refused_request: Request | None = None
        # Above the buffered-body size, so a handler reading a body whole is never paused.
        self.high_water = max(HIGH_WATER, self.settings.buffer_body + 1)

    @property
    def lost(self) -> bool:
        """Whether the connection is gone."""
        return self.state == CLOSED

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
            self.state = CLOSED
            return
        self.server.connections.add(self)
        self.deadline = self.loop.time() + self.settings.header_timeout

    def data_received(self, data: bytes) -> None:
        if self.state == LINGER:
            self.deadline = min(self.loop.time() + LINGER_TIMEOUT, self.linger_end)
            return  # a lingering close: dropped unread
        if self.refused is not None:
            return  # a request was refused; what follows it is never read
        req = self.parsing
        body = None
        if req is None or not req.parsed:
            # httptools gathers a header's pieces itself: bound the head before feeding it.
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end
            if self._head_bytes > MAX_TARGET + MAX_HEADER_BYTES:
                self._refuse(ClientError(431, "headers_too_large", "the request head is too large"))
                return
        elif req.headers.chunked:
            body, received, self._chunks = req.body, req.body.received if req.body else 0, 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # CONNECT, or an Upgrade request: this gateway tunnels neither.
            self._refuse(
                ClientError(
                    501, "not_implemented", "CONNECT and protocol upgrades are not supported"
                )
            )
        except httptools.HttpParserCallbackError as failed:
            cause = failed.__context__
            if isinstance(cause, ClientError):
                self._refuse(cause)
            else:
                log.exception("request handling failed", exc_info=cause)
                self._refuse(
                    ClientError(500, "internal_error", "the gateway failed to read the request")
                )
        except httptools.HttpParserError as malformed:
            log.debug("malformed request from %s: %s", self.peer, malformed)
            self._refuse(ClientError(400, "bad_request", "the request is not valid HTTP/1.1"))
        else:
            if body is not None and self.parsing is req:  # its chunked body is still arriving
                self._framing = framing_excess(
                    self._framing, len(data), body.received - received, self._chunks
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
        if self.state == LINGER:
            return False  # what the client sent after its answer has all been read: close
        req = self.parsing
        current = self.current
        if req is None or req.body is None or current is None or current.request is not req:
            return False
        req.body.fail(
            ClientError(400, "bad_request", "the body ended before its declared length", True)
        )
        return True  # keep the socket open to send that answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        self.server.connections.discard(self)
        gone = ClientGone("the client closed the connection")
        for req in (self.current.request if self.current else None, self.parsing):
            if req is not None and req.body is not None:
                req.body.fail(gone)
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(gone)
        if self.current is not None and self._task is not None:
            self.current.client_left = True
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
        if self._next_pending and self.current is None and self.state != CLOSED:
            self._next()

    # -- llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.parsing = Request(self.peer, self.loop.time())
        self._header_bytes = self._framing = 0
        if self.state == IDLE or self.state == BUSY:
            self.state, self.deadline = HEAD, self.loop.time() + self.settings.header_timeout

    def on_url(self, url: bytes) -> None:
        req = self.parsing
        assert req is not None
        req.target += url
        if len(req.target) > MAX_TARGET:
            raise ClientError(414, "uri_too_long", f"the request target is over {MAX_TARGET} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.parsing
        assert req is not None
        if req.parsed:
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
        parser = self.parser
        has_body = check(
            req, parser.get_method(), parser.get_http_version(), parser.should_keep_alive()
        )
        settings = self.settings
        if req.content_length is not None and req.content_length > settings.max_body_size:
            raise ClientError(
                413, "body_too_large", f"the body is over {settings.max_body_size} bytes"
            )
        if has_body:
            req.body = BodyBuffer(self, self.high_water)
            self.state, self.deadline = BODY, self.loop.time() + settings.body_timeout
        else:
            self.state = BUSY
        if self.current is None:
            self._dispatch(req)
        else:
            self.queue.append(req)  # pipelined: answered after the ones before it
            self._pause_reading()

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_body(self, data: bytes) -> None:
        req = self.parsing
        assert req is not None and req.body is not None
        self.deadline = self.loop.time() + self.settings.body_timeout
        if req.body.feed(data) > self.settings.max_body_size:
            raise ClientError(
                413, "body_too_large", f"the body is over {self.settings.max_body_size} bytes"
            )

    def on_message_complete(self) -> None:
        req = self.parsing
        assert req is not None
        self.parsing = None
        self.state = BUSY
        if req.body is not None:
            req.body.finish()

    # -- the body's flow (gateway.body.Flow) ------------------------------------------------

    def body_paused(self) -> None:
        self._pause_reading()

    def body_wanted(self) -> None:
        """The handler reads the body: "100 Continue" if it is owed, and read again."""
        if self._continue_owed:
            self._continue_owed = False
            current = self.current
            body = current.request.body if current is not None else None
            if current is not None and not current.started and body is not None and not body.done:
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.resume_reading()

    # -- requests and answers ---------------------------------------------------------------

    def _dispatch(self, req: Request) -> None:
        self.current = reply = Reply(self, req)
        # An HTTP/1.0 client's expectation is ignored (RFC 9110).
        self._continue_owed = (
            req.body is not None and req.headers.expect_continue and req.version == "1.1"
        )
        self._task = self.loop.create_task(self._serve(req, reply))

    async def _serve(self, req: Request, reply: Reply) -> None:
        try:
            await self.server.handler(req, reply)
        except ClientGone:
            pass
        except asyncio.CancelledError:
            if self.state != CLOSED:
                raise
            return  # cancelled by connection_lost: the client is gone
        except Refusal as exc:
            self.answer_error(reply, exc)
        except Exception:
            log.exception("request %s failed", req.request_id)
            self.answer_error(reply, ClientError(500, "internal_error", "the gateway failed"))
        self._done(reply)

    def _done(self, reply: Reply) -> None:
        self.current = self._task = None
        self._continue_owed = False
        if self.state == CLOSED or self.transport is None or self.transport.is_closing():
            return  # aborted or closed: no later request may still reach an upstream
        body = reply.request.body
        if body is not None and not body.done:
            self.linger()  # answered before its body was read: the client may still send it
            return
        if not reply.keeps_alive():
            self.close()
            return
        self._next()

    def keeps_alive(self, request: Request) -> bool:
        """Whether the connection carries another request after *request*'s answer.

        Not if the client asked to close, the body was not read to its end (an early answer:
        what remains cannot be told from a next request), or the worker is stopping.
        """
        body = request.body
        return (
            request.keep_alive and (body is None or body.done) and not self.server.closing
        )  # fmt: skip

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
                self.state, self.deadline = IDLE, self.loop.time() + self.settings.keepalive_timeout

    def _refuse(self, exc: ClientError) -> None:
        """A request that cannot be parsed or is over a limit: refuse it, then close.

        If it is the request being answered (its body broke), its handler answers. Otherwise
        the requests before it are answered first, in order, and the refusal comes last.
        """
        self.state = BUSY
        req = self.parsing
        if req is not None and not req.parsed:
            # Known once the request line's method is parsed: a refused HEAD gets a head only.
            req.method = self.parser.get_method()
        self.parser = httptools.HttpRequestParser(self)  # never fed again: the connection ends
        current = self.current
        if req is not None and current is not None and current.request is req:
            if req.body is not None:
                req.body.fail(exc)  # the handler waiting for the body answers this itself
            if current.started:
                self.abort(str(exc))
            return
        self.refused = exc
        self.refused_request = req
        if current is None and not self.queue:
            self._send_refusal()

    def _send_refusal(self) -> None:
        assert self.refused is not None
        req = self.refused_request
        if req is None:
            self.write(
                error_answer(self.refused.status, self.refused.code, self.refused.detail, "-")
            )
        else:
            reply = Reply(self, req)
            reply.reusable = False  # the connection ends after a refusal
            reply.error(self.refused)
        self.linger()  # the refused request may be followed by more of it

    def answer_error(self, reply: Reply, exc: Refusal) -> None:
        """Send a JSON error unless an answer has started (then the connection is cut)."""
        if reply.started:
            self.abort(str(exc))
            return
        reply.error(exc)

    def on_deadline(self) -> None:
        """A deadline passed: answer 408 where a request had begun, else just close."""
        state, self.state = self.state, BUSY
        req = self.parsing
        current = self.current
        if state == BODY and req is not None and current is not None and current.request is req:
            if req.body is not None:
                req.body.fail(
                    ClientError(408, "request_timeout", "the request body stopped arriving", True)
                )
        elif state == HEAD and req is not None:
            self._refuse(
                ClientError(408, "request_timeout", "the request headers did not arrive in time")
            )
        else:
            self.close()

    # -- the reply's stream (gateway.reply.ClientStream) ------------------------------------

    def write(self, data: bytes) -> None:
        """Write to the client unless it is gone."""
        if self.state != CLOSED and self.transport is not None:
            self.transport.write(data)

    def relaying(self) -> None:
        """A streamed answer follows: wait for a slow client from RELAY_HIGH_WATER on."""
        if self.transport is not None and self.state != CLOSED:
            self.transport.set_write_buffer_limits(RELAY_HIGH_WATER)

    async def drain(self) -> None:
        """Wait while the client's socket buffer is full."""
        if self.state == CLOSED:
            raise ClientGone("the client closed the connection")
        if self.write_paused:
            self._drain = self.loop.create_future()
            await self._drain

    def abort(self, why: str) -> None:
        """Cut the connection at once (an answer had started, or a client misbehaved)."""
        log.debug("closing a connection from %s: %s", self.peer, why)
        if self.transport is not None:
            self.transport.abort()

    # -- reading and closing ----------------------------------------------------------------

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
        if transport is None or self.state == CLOSED or transport.is_closing():
            return
        if self.eof or not transport.can_write_eof():
            self.close()
            return
        self.queue.clear()
        self.parsing = None
        now = self.loop.time()
        self.state, self.linger_end = LINGER, now + LINGER_TIME
        self.deadline = now + LINGER_TIMEOUT
        transport.write_eof()
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()
