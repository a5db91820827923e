"""Connections to upstream instances on asyncio, their answers parsed by llhttp.

Each outcome of an attempt is a distinct exception (:mod:`gateway.errors`) the proxy's retry
loop acts on: a connection that never formed, no answer in time, a connection that broke, or
an answer whose framing cannot be trusted (llhttp's verdict: Content-Length with
Transfer-Encoding, differing lengths, a bad status line; and ours: a status outside 100-599, a
transfer coding besides chunked, chunk framing past :mod:`gateway.framing`'s bound).

A connection is reused (:mod:`gateway.pool`) only when its answer was read exactly to the end:
interim 1xx answers are skipped, trailer fields are dropped (never merged into the headers),
and a connection on which anything arrives after the answer (or while idle) is closed, so one
client can never receive bytes meant for another.

An instance is read 16 KiB at a time, and no further while 32 KiB of its answer wait for a
slow client. An answer of known length up to 64 KiB is read whole before the proxy is woken:
one wake-up per request. A streamed request body stops at an early answer, which is relayed.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, cast

import httptools

from gateway.body import BodyBuffer
from gateway.errors import UpstreamBadResponse, UpstreamBroken, UpstreamTimeout
from gateway.framing import MAX_FRAMING, chunk, framing_excess
from gateway.headers import (
    CONNECTION_OPTIONS,
    RESPONSE_DROPPED,
    connection_tokens,
    without_named,
)

if TYPE_CHECKING:
    from gateway.deadlines import Deadlines

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
# Every upstream connection of a worker reads into these buffers: a read is copied out at
# once (buffer_updated), and one event loop never runs two reads at a time.
_READ_BUFFER = memoryview(bytearray(SMALL_ANSWER))
_SMALL_READ = _READ_BUFFER[:READ_SIZE]


class UpstreamState(enum.IntEnum):
    """Where an upstream connection is in its life (httpcore's states)."""

    NEW = 1  # connected, never used
    ACTIVE = 2  # carrying a request and its answer
    IDLE = 3  # in the pool, its last answer read exactly to the end
    CLOSED = 4  # closed by either side; never used again


NEW, ACTIVE, IDLE, CLOSED = UpstreamState


class Answer:
    """One upstream answer: status and headers, then the body.

    *head* resolves when the status and headers are in, except for an answer of known small
    length, which it awaits whole (:attr:`whole`), so that the proxy wakes once. Any other
    body arrives through :attr:`body`, a :class:`gateway.body.BodyBuffer`.
    """

    __slots__ = (
        "_parts",
        "body",
        "chunked",
        "done",
        "head",
        "keep_alive",
        "length",
        "lines",
        "reason",
        "started",
        "status",
        "timed",
        "whole",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head: asyncio.Future[None] = loop.create_future()
        self.status, self.reason = 0, b""
        # The header fields to pass on, sorted as they arrive (UpstreamConnection.on_header).
        self.lines: list[bytes] = []
        self.length: int | None = None
        self.chunked = False
        self.keep_alive = True
        self.started = False  # the final answer's head is parsed
        self.done = False  # the answer ended where its framing said
        self.body: BodyBuffer | None = None  # a body relayed as it arrives
        self._parts: list[bytes] = []  # a small body, read whole
        self.whole: bytes | None = None  # the body, when it was read whole within the attempt
        self.timed = False  # under the attempt's deadline (see gateway.deadlines)

    def fail(self, error: BaseException) -> None:
        """The answer will not end: wake whoever waits for its head or its body."""
        self.timed = False
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved: the proxy may have stopped waiting already
        if self.body is not None:
            self.body.fail(error)


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
        self.state = NEW
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: Answer | None = None
        self.reused = False  # taken from the pool for this request
        self.idle_since = 0.0
        self.read_paused = self.write_paused = False
        self._whole_body = False  # the answer's head waits for its (small) body
        self._head_request = False
        self._interim = False
        self._sent_whole = True  # False while a streamed body is cut short or still going
        self._header_bytes = 0
        self._fields = 0  # header fields of the answer so far
        self._named: frozenset[bytes] = frozenset()  # what its Connection header names
        self._framing = self._chunks = 0  # see gateway.framing
        self._drain: asyncio.Future[None] | None = None
        self._on_answer: Callable[[], None] | None = None

    def reusable(self) -> bool:
        """Whether this connection may carry another request: its answer ended exactly."""
        answer = self.answer
        return (
            self.state == ACTIVE
            and answer is not None
            and answer.done
            and answer.keep_alive
            and self._sent_whole
            and not self._head_request
        )

    # -- asyncio.BufferedProtocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _READ_BUFFER if self._whole_body else _SMALL_READ

    def buffer_updated(self, nbytes: int) -> None:
        # A copy, as a plain protocol's read is: the buffer is the next connection's too.
        self.data_received(bytes(_READ_BUFFER[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Parse what the instance sent (called for each read, and by in-memory tests)."""
        answer = self.answer
        if answer is None or answer.done or self.state != ACTIVE:
            self.close()  # bytes nobody asked for: this connection can never be trusted again
            return
        received = -1
        if not answer.started:
            # httptools gathers a header's pieces itself, so bound the head before feeding it;
            # only the bytes before the blank line count (the body may come in the same read).
            end = data.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end
            if self._header_bytes > MAX_HEADER_BYTES:
                self._broken(UpstreamBadResponse("the answer's head is over 64 KiB"))
                return
        elif answer.chunked and answer.body is not None:
            received, self._chunks = answer.body.received, 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as failed:
            self._broken(failed.__context__ or failed)
        except httptools.HttpParserError as malformed:
            self._broken(UpstreamBadResponse(f"invalid answer: {malformed}"))
        else:
            if received >= 0 and not answer.done and answer.body is not None:
                body = answer.body.received - received
                self._framing = framing_excess(self._framing, len(data), body, self._chunks)
                if self._framing > MAX_FRAMING:
                    self._broken(
                        UpstreamBadResponse(
                            f"over {MAX_FRAMING} bytes of chunk extensions and trailer fields"
                        )
                    )

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        if self._drain is not None and not self._drain.done():
            # Whether or not an answer came: a body still going out has nowhere to go.
            self._drain.set_exception(UpstreamBroken("the connection closed", self.reused))
        answer = self.answer
        if answer is None or answer.done:
            return
        if answer.started and answer.length is None and not answer.chunked:
            self._finish(answer)  # a body delimited by the connection's end
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

    # -- the answer body's flow (gateway.body.Flow) -----------------------------------------

    def body_paused(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def body_wanted(self) -> None:
        if self.read_paused and self.transport is not None and self.state != CLOSED:
            self.read_paused = False
            self.transport.resume_reading()

    def idle_timeout(self, seconds: float) -> None:
        """A streamed answer sent nothing for *seconds*."""
        self.expire(UpstreamTimeout(f"no answer bytes for {seconds:g}s"))

    # -- llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        answer = self.answer
        if answer is None or answer.done:
            raise UpstreamBadResponse("the instance sent more than one answer")

    def on_status(self, reason: bytes) -> None:
        assert self.answer is not None
        self.answer.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        """Sort one header field as it arrives: passed on, framing, or hop-by-hop.

        What an answer loses is gateway.headers' rule (RESPONSE_DROPPED, and what Connection
        names); sorting here, in the one callback llhttp makes per field, costs no second pass.
        """
        answer = self.answer
        assert answer is not None
        if answer.started:
            # A trailer field: never merged into the header section (RFC 9110 §6.5.1), and not
            # passed on either (as nginx without proxy_pass_trailers); its size is bounded in
            # data_received.
            return
        self._fields += 1
        if self._fields > MAX_HEADERS:
            raise UpstreamBadResponse("the answer has too many headers")
        lower = name.lower()
        if lower not in RESPONSE_DROPPED:
            answer.lines.append(name + b": " + value)
        elif lower == b"content-length":
            answer.length = int(value)  # llhttp refused anything but one plain number
        elif lower == b"transfer-encoding":
            # Only "chunked" alone, as nginx and Envoy insist: relaying "gzip, chunked" would
            # need the coding kept end to end (an HTTP/1.0 client cannot take it), and dropping
            # it hands the client gzip bytes it was not told about.
            if answer.chunked or value.strip().lower() != b"chunked":
                raise UpstreamBadResponse(
                    f"unsupported Transfer-Encoding {value.decode('latin-1')!r}"
                )
            answer.chunked = True
        elif lower == b"connection" and value.lower() not in CONNECTION_OPTIONS:
            self._named |= connection_tokens(value)  # headers it names are hop-by-hop too

    def on_headers_complete(self) -> None:
        answer = self.answer
        assert answer is not None
        status = self.parser.get_status_code()
        if not 100 <= status <= 599:
            # llhttp takes any three digits; a code outside 1xx-5xx has no meaning (RFC 9110
            # §15), and nginx answers 502 for it too.
            raise UpstreamBadResponse(f"invalid status code {status}")
        if status < 200:
            if status == 101:
                raise UpstreamBadResponse(
                    "101 Switching Protocols to a request that asked for none"
                )
            self._interim = True  # 100 Continue, 103 Early Hints: the final answer follows
            answer.lines, answer.reason = [], b""
            answer.length, answer.chunked = None, False
            self._fields, self._named = 0, frozenset()
            return
        answer.status = status
        answer.started = True
        if self._named:
            answer.lines = without_named(answer.lines, self._named)
        if status == 204 or status == 304:
            answer.length = 0
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)  # answered while the body was still going out
        if self._on_answer is not None:
            self._on_answer()
        if self._head_request:
            # llhttp does not know the request was HEAD and would wait for a body; the
            # length stays, as the client's answer to HEAD carries it.
            self._finish(answer)
        elif answer.length is not None and answer.length <= SMALL_ANSWER:
            # Held in full anyway: read in one go, and wake the proxy once, at the end.
            self._whole_body = True
        else:
            # Relayed as it arrives: the attempt's deadline is met, each wait is bounded now.
            answer.timed = False
            answer.body = BodyBuffer(self, HIGH_WATER, self.idle_timeout)
            answer.head.set_result(None)

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_body(self, data: bytes) -> None:
        answer = self.answer
        assert answer is not None
        if answer.body is None:
            answer._parts.append(data)
        else:
            answer.body.feed(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        answer = self.answer
        assert answer is not None
        answer.keep_alive = self.parser.should_keep_alive()
        self._finish(answer)

    def _finish(self, answer: Answer) -> None:
        answer.timed = False
        answer.done = True
        if self._whole_body:
            self._whole_body = False
            parts = answer._parts
            answer.whole = parts[0] if len(parts) == 1 else b"".join(parts)
        if answer.body is not None:
            answer.body.finish()
        if not answer.head.done():
            answer.head.set_result(None)

    def _broken(self, error: BaseException) -> None:
        if self.answer is not None:
            self.answer.fail(error)
        self.close()

    # -- used by the proxy ------------------------------------------------------------------

    def request(self, head: bytes, body: bytes, timeout: float, head_request: bool) -> Answer:
        """Send a request whose body is whole; await the answer's :attr:`Answer.head`."""
        transport = self.transport
        assert transport is not None
        answer = self._begin(head_request, None)
        self._sent_whole = True
        self.deadlines.add(self, answer, timeout)
        # One write for head and body: one syscall, and no Nagle delay between them.
        transport.write(head + body)
        return answer

    async def request_streamed(
        self,
        head: bytes,
        body: AsyncIterator[bytes],
        chunked: bool,
        timeout: float,
        head_request: bool,
        on_answer: Callable[[], None] | None = None,
    ) -> Answer:
        """Send a request whose body arrives as it is sent, and wait for the answer's head.

        The body stops at an early answer; *on_answer* is then called, so that a body
        source waiting for its client can stop waiting.
        """
        answer = self._begin(head_request, on_answer)
        await self._stream_body(answer, head, body, chunked, timeout)
        await answer.head
        return answer

    def _begin(self, head_request: bool, on_answer: Callable[[], None] | None) -> Answer:
        self.state = ACTIVE
        answer = self.answer = Answer(self.loop)
        self._head_request = head_request
        self._header_bytes = self._framing = self._fields = 0
        self._named = frozenset()
        self._on_answer = on_answer
        return answer

    async def _stream_body(
        self,
        answer: Answer,
        head: bytes,
        body: AsyncIterator[bytes],
        chunked: bool,
        timeout: float,
    ) -> None:
        """Send a body as it arrives, at the instance's pace, until it ends or is answered.

        An instance may answer before it has read the body (a 413, a 405): the answer is
        relayed and the rest of the body is not sent, as nginx and Envoy do. The connection is
        then never reused, since the instance may not have read what was already sent.
        """
        transport = self.transport
        assert transport is not None
        self._sent_whole = False  # cut short if the client fails: never reused after that
        transport.write(head)
        async for data in body:
            if answer.started:
                break
            transport.write(chunk(data) if chunked else data)
            try:
                await self.drain(timeout)  # also ends when the answer's head arrives
            except UpstreamBroken:
                if not answer.started:
                    raise
                break  # answered, then closed (as gunicorn does after an early answer)
        if not answer.started:
            if chunked:
                transport.write(b"0\r\n\r\n")
            self._sent_whole = True
        if not answer.done and not answer.head.done():
            self.deadlines.add(self, answer, timeout)

    async def drain(self, timeout: float) -> None:
        """Wait while the instance is not reading what is sent to it, and has not answered."""
        if self.state == CLOSED:
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

    def close(self) -> None:
        """Close the connection (it is never reused)."""
        self.state = CLOSED
        transport = self.transport
        if transport is not None:
            if transport.get_write_buffer_size():
                # Unsent request bytes (a body cut short by an early answer): an instance that
                # does not read would keep a graceful close, and the buffer, waiting forever.
                transport.abort()
            else:
                transport.close()
