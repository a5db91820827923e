"""Connections to upstream instances on asyncio, their answers parsed by llhttp.

Each outcome of an attempt is a distinct exception the proxy's retry loop acts on: a connection
that never formed (:class:`ConnectFailed`), no answer in time (:class:`UpstreamTimeout`), a
connection that broke (:class:`UpstreamBroken`), or an answer whose framing cannot be trusted
(:class:`UpstreamBadResponse`, llhttp's verdict: Content-Length with Transfer-Encoding,
differing lengths, a bad status line). A connection the gateway could not even try for want of
its own resources (:class:`LocalResourceError`: no file descriptor, no buffer, no port) is not
an upstream failure at all, and never counts against an instance.

An instance is read 16 KiB at a time, and no further while 32 KiB of its answer wait for a
slow client. A streamed request body stops at an early answer, which is then relayed.

A connection goes back to the pool (:mod:`gateway.pool`) only when its answer was read exactly to the end: interim
1xx answers are skipped, and a connection on which anything arrives after the answer (or while
idle) is closed, so one client can never receive bytes meant for another.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, cast

import httptools

from gateway.framing import MAX_FRAMING, framing_excess

if TYPE_CHECKING:
    from gateway.pool import Deadlines

MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024
# Memory per answer relayed to a slow client, as nginx's proxy buffers bound it: an instance
# is read READ_SIZE bytes at a time, and no more once HIGH_WATER bytes wait for the client.
READ_SIZE = 16 * 1024
HIGH_WATER = 32 * 1024
# An answer of known length up to SMALL_ANSWER is read whole (and relayed in one write), in
# reads of that size: in 16 KiB pieces, each waking the reader, a 60 KB answer cost twice
# the CPU of one read.
SMALL_ANSWER = 64 * 1024
UNBOUNDED = 1 << 62
# Every upstream connection of a worker reads into these buffers: a read is copied out at
# once (buffer_updated), and one event loop never runs two reads at a time.
_READ_BUFFER = memoryview(bytearray(SMALL_ANSWER))
_SMALL_READ = _READ_BUFFER[:READ_SIZE]


class UpstreamError(Exception):
    """Base class of the failures that count against an upstream instance."""


class ConnectFailed(UpstreamError):
    """The TCP connection could not be made: the request was never sent."""


class UpstreamTimeout(UpstreamError):
    """The instance did not answer within the attempt's time."""


class UpstreamBroken(UpstreamError):
    """The connection broke before a whole answer arrived; *reused* if it came from the pool."""

    def __init__(self, message: str, reused: bool) -> None:
        super().__init__(message)
        self.reused = reused


class UpstreamBadResponse(UpstreamError):
    """The answer's framing or syntax is invalid."""


class LocalResourceError(Exception):
    """The gateway ran out of a resource of its own (EMFILE, ENFILE, ENOBUFS, ENOMEM,
    EADDRNOTAVAIL) before a connection could be tried: its own fault, not the instance's.

    *reason* is the errno's name, for the metric.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def failure_reason(error: UpstreamError | None, status: int = 0) -> str:
    """A short code for why an attempt failed, as the routing page shows an ejection's cause."""
    if error is None:
        return f"status_{status}"
    if isinstance(error, ConnectFailed):
        cause = error.__cause__
        if isinstance(cause, ConnectionRefusedError):
            return "connect_refused"
        return "connect_timeout" if isinstance(cause, TimeoutError) else "connect_failed"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    return "bad_response" if isinstance(error, UpstreamBadResponse) else "connection_broken"


class Answer:
    """One upstream answer: status and headers first, then the body as it arrives."""

    __slots__ = (
        "_parts",
        "_waiter",
        "body",
        "buffered",
        "chunked",
        "conn",
        "done",
        "error",
        "head",
        "headers",
        "keep_alive",
        "length",
        "limit",
        "reason",
        "status",
        "timed",
    )

    def __init__(self, conn: UpstreamConnection) -> None:
        self.conn = conn
        self.head: asyncio.Future[None] = conn.loop.create_future()
        self.status, self.reason = 0, b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.length: int | None = None
        self.chunked = False
        self.keep_alive = True
        self.done = False
        self.error: BaseException | None = None
        self.buffered = 0
        self.limit = HIGH_WATER  # body bytes held before the instance is no longer read
        self.body: bytes | None = None  # the whole body, when it was read within the attempt
        self._parts: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        self.timed = False  # under the attempt's deadline (see gateway.pool.Deadlines)

    def feed(self, data: bytes) -> None:
        self._parts.append(data)
        self.buffered += len(data)
        if self.buffered >= self.limit:
            self.conn.pause()
        if self.limit != UNBOUNDED:  # read_all waits for the end only
            self._wake()

    def finish(self) -> None:
        self.done = True
        self.timed = False
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self.done or self.error is not None:
            return
        self.error = error
        self.timed = False
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: the proxy may have stopped waiting already
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout: float | None) -> None:
        loop = self.conn.loop
        self._waiter = loop.create_future()
        idle = None
        if timeout is not None:
            message = f"no answer bytes for {timeout:g}s"
            idle = loop.call_later(timeout, self.conn.expire, UpstreamTimeout(message))
        try:
            await self._waiter
        finally:
            self._waiter = None
            if idle is not None:
                idle.cancel()

    def _take(self) -> bytes:
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts.clear()
        self.buffered = 0
        self.conn.resume()
        return data

    async def read_all(self) -> bytes:
        """The whole body (the attempt's timer still runs); for small answers only, as no
        bound applies while it is read."""
        self.limit = UNBOUNDED
        self.conn.resume()
        while not self.done:
            if self.error is not None:
                raise self.error
            await self._wait(None)
        return self._take()

    async def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        """The body as it arrives, each wait bounded by *idle_timeout*."""
        self.timed = False
        while True:
            if self._parts:
                yield self._take()
            elif self.done:
                return
            elif self.error is not None:
                raise self.error
            else:
                await self._wait(idle_timeout)


class UpstreamConnection(asyncio.BufferedProtocol):
    """One keep-alive connection to an instance; carries one request at a time.

    A buffered protocol only so as to choose the size of a read (READ_SIZE): a plain
    protocol's reads are as large as uvloop's own buffer, 256 KiB, each held until the client
    takes it.
    """

    def __init__(self, key: tuple[str, int], deadlines: Deadlines) -> None:
        self.key = key
        self.deadlines = deadlines
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: Answer | None = None
        self.reusable = True
        self.reused = False
        self.lost = False
        self.head_request = False
        self.interim = False
        self.idle_since = 0.0
        self.paused = False
        self._header_bytes = 0
        self._framing = self._chunks = 0  # see gateway.framing
        self._drain: asyncio.Future[None] | None = None
        self.write_paused = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        answer = self.answer
        return _READ_BUFFER if answer is not None and answer.limit == UNBOUNDED else _SMALL_READ

    def buffer_updated(self, nbytes: int) -> None:
        # A copy, as a plain protocol's read is: the buffer is the next connection's too.
        self.data_received(bytes(_READ_BUFFER[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Parse what the instance sent (called for each read, and by in-memory tests)."""
        answer = self.answer
        if answer is None or answer.done:
            self.close()  # bytes nobody asked for: this connection can never be trusted again
            return
        chunked = False
        if not answer.head.done():
            # httptools gathers a header's pieces itself, so bound the head before feeding it;
            # only the bytes before the blank line count (the body may come in the same read).
            end = data.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end
            if self._header_bytes > MAX_HEADER_BYTES:
                self._broken(UpstreamBadResponse("the answer's head is over 64 KiB"))
                return
        elif answer.chunked:
            chunked, buffered, self._chunks = True, answer.buffered, 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._broken(exc.__context__ or exc)
        except httptools.HttpParserError as exc:
            self._broken(UpstreamBadResponse(f"invalid answer: {exc}"))
        else:
            if chunked and not answer.done:
                # The body read in this feed: Answer.feed only adds, the reader takes later.
                body = answer.buffered - buffered
                self._framing = framing_excess(self._framing, len(data), body, self._chunks)
                if self._framing > MAX_FRAMING:
                    self._broken(
                        UpstreamBadResponse(
                            f"over {MAX_FRAMING} bytes of chunk extensions and trailer fields"
                        )
                    )

    def _broken(self, error: BaseException) -> None:
        if self.answer is not None:
            self.answer.fail(error)
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.reusable = False
        if self._drain is not None and not self._drain.done():
            # Whether or not an answer came: a body still going out has nowhere to go.
            self._drain.set_exception(UpstreamBroken("the connection closed", self.reused))
        answer = self.answer
        if answer is None or answer.done:
            return
        if answer.head.done() and answer.length is None and not answer.chunked:
            answer.finish()  # a body delimited by the connection's end
        else:
            answer.fail(
                UpstreamBroken("the connection closed before the answer ended", self.reused)
            )

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        answer = self.answer
        if answer is None or answer.done:
            raise UpstreamBadResponse("the instance sent more than one answer")

    def on_status(self, reason: bytes) -> None:
        assert self.answer is not None
        self.answer.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        answer = self.answer
        assert answer is not None
        if answer.head.done():
            # A trailer field: never merged into the header section (RFC 9110 §6.5.1), and not
            # passed on either (as nginx without proxy_pass_trailers); its size is bounded in
            # data_received.
            return
        headers = answer.headers
        if len(headers) >= MAX_HEADERS:
            raise UpstreamBadResponse("the answer has too many headers")
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        answer = self.answer
        assert answer is not None
        status = self.parser.get_status_code()
        if not 100 <= status <= 599:
            # llhttp takes any three digits; a code outside 1xx-5xx has no meaning (RFC 9110
            # §15), and nginx answers 502 for it too.
            raise UpstreamBadResponse(f"invalid status code {status}")
        if 100 <= status < 200:
            if status == 101:
                raise UpstreamBadResponse(
                    "101 Switching Protocols to a request that asked for none"
                )
            self.interim = True  # 100 Continue, 103 Early Hints: the final answer follows
            answer.headers.clear()
            answer.reason = b""
            return
        answer.status = status
        for name, value in answer.headers:
            lower = name.lower()
            if lower == b"content-length":
                answer.length = int(value)  # llhttp refused anything but one plain number
            elif lower == b"transfer-encoding":
                # Only "chunked" alone, as nginx and Envoy insist: relaying "gzip, chunked"
                # would need the coding kept end to end (an HTTP/1.0 client cannot take it),
                # and dropping it hands the client gzip bytes it was not told about.
                if answer.chunked or value.strip().lower() != b"chunked":
                    raise UpstreamBadResponse(
                        f"unsupported Transfer-Encoding {value.decode('latin-1')!r}"
                    )
                answer.chunked = True
        if status in (204, 304):
            answer.length = 0
        if answer.length is not None and answer.length <= SMALL_ANSWER:
            answer.limit = UNBOUNDED  # read whole: held in full anyway, so read in one go
        if self.head_request:
            # llhttp does not know the request was HEAD and would wait for a body; the
            # length stays, as the client's answer to HEAD carries it.
            self.reusable = False
            answer.finish()
        answer.head.set_result(None)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)  # answered while the body was still going out

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_body(self, data: bytes) -> None:
        assert self.answer is not None
        self.answer.feed(data)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        answer = self.answer
        assert answer is not None
        answer.keep_alive = self.parser.should_keep_alive()
        answer.finish()

    # -- used by the proxy ------------------------------------------------------------------

    async def send(
        self,
        head: bytes,
        body: bytes | AsyncIterator[bytes],
        chunked: bool,
        timeout: float,
        head_request: bool,
        on_answer: Callable[[], None] | None = None,
    ) -> Answer:
        """Send one request and wait for the answer's status and headers.

        A streamed *body* stops at an early answer; *on_answer* is then called, so that a
        body source waiting for its client can stop waiting.
        """
        assert self.transport is not None
        answer = self.answer = Answer(self)
        self.head_request = head_request
        self._header_bytes = self._framing = 0
        if isinstance(body, bytes):
            self.deadlines.add(answer, timeout)
            # One write for head and body: one syscall, and no Nagle delay between them.
            self.transport.write(head + body)
        else:
            await self._stream_body(answer, head, body, chunked, timeout, on_answer)
        await answer.head
        return answer

    async def _stream_body(
        self,
        answer: Answer,
        head: bytes,
        body: AsyncIterator[bytes],
        chunked: bool,
        timeout: float,
        on_answer: Callable[[], None] | None,
    ) -> None:
        """Send a body as it arrives, at the instance's pace, until it ends or is answered.

        An instance may answer before it has read the body (a 413, a 405): the answer is
        relayed and the rest of the body is not sent, as nginx and Envoy do. The connection is
        then never reused, since the instance may not have read what was already sent.
        """
        assert self.transport is not None
        self.reusable = False  # cut short if the client fails: never reused after a stream
        if on_answer is not None:
            answer.head.add_done_callback(lambda _: on_answer())
        self.transport.write(head)
        async for data in body:
            if answer.head.done():
                break
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            try:
                await self.drain(timeout)  # also ends when the answer's head arrives
            except UpstreamBroken:
                if not answer.head.done():
                    raise
                break  # answered, then closed (as gunicorn does after an early answer)
        if not answer.head.done():
            if chunked:
                self.transport.write(b"0\r\n\r\n")
            self.reusable = True
        if not answer.done and answer.error is None:
            self.deadlines.add(answer, timeout)

    async def drain(self, timeout: float) -> None:
        """Wait while the instance is not reading what is sent to it, and has not answered."""
        if self.lost:
            raise UpstreamBroken("the connection closed while sending", self.reused)
        if self.write_paused:
            self._drain = self.loop.create_future()
            try:
                await asyncio.wait_for(self._drain, timeout)
            except TimeoutError:
                self.time_out(timeout)
                raise UpstreamTimeout(f"the instance read nothing for {timeout:g}s") from None

    def time_out(self, seconds: float) -> None:
        """The attempt's deadline passed."""
        self.expire(UpstreamTimeout(f"no answer within {seconds:g}s"))

    def expire(self, error: UpstreamTimeout) -> None:
        """The attempt ran out of time: fail the answer and drop the connection."""
        if self.answer is not None:
            self.answer.fail(error)
        self.close()

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.lost:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.reusable = False
        transport = self.transport
        if transport is not None:
            if transport.get_write_buffer_size():
                # Unsent request bytes (a body cut short by an early answer): an instance that
                # does not read would keep a graceful close, and the buffer, waiting forever.
                transport.abort()
            else:
                transport.close()
