"""A message body as it arrives, read whole or as a stream, with flow control: both sides use it.

A client's request body and an instance's answer body are the same thing to the proxy: bytes
fed by a parser, taken by a reader, and a producer to pause while the reader falls behind.
:class:`BodyBuffer` holds the bytes, wakes the one reader, and pauses its :class:`Flow` (the
connection the bytes come from) above a high-water mark, resuming it as bytes are taken.

Memory per body is bounded by the high-water mark plus one read, except while a body is read
whole (:meth:`BodyBuffer.read_all`), which its caller bounds: the client's by
``GATEWAY_BUFFER_BODY``, an answer's by the small-answer size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

UNBOUNDED = 1 << 62


class Flow(Protocol):
    """The producer of a body: the connection whose reading is paused and resumed."""

    def body_paused(self) -> None:
        """Stop reading: the reader is behind."""

    def body_wanted(self) -> None:
        """Read again: the reader took what was held (or asks for the body the first time)."""


class BodyBuffer:
    """The bytes of one body not yet taken, and whether (and how) the body ended."""

    __slots__ = (
        "_flow",
        "_idle",
        "_parts",
        "_waiter",
        "_wake_at",
        "buffered",
        "done",
        "error",
        "high_water",
        "received",
        "stopped",
    )

    def __init__(
        self,
        flow: Flow,
        high_water: int,
        on_idle: Callable[[float], None] | None = None,
    ) -> None:
        self._flow = flow
        self._parts: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None
        # A waiting reader is woken once this much is held (or at the end): 1 for a stream,
        # the whole limit for a body read whole, so that a large read wakes nobody per piece.
        self._wake_at = 1
        # Called, with the seconds waited, when a wait with a timeout passes it: the answer's
        # connection fails the body (UpstreamTimeout) and closes.
        self._idle = on_idle
        self.high_water = high_water
        self.buffered = 0  # held, not yet taken
        self.received = 0  # in all
        self.done = False
        self.stopped = False  # the reader wants no more (an early answer)
        self.error: BaseException | None = None

    # -- the producer's side (a parser's callbacks) -----------------------------------------

    def feed(self, data: bytes) -> int:
        """Add body bytes; return how many arrived in all."""
        self._parts.append(data)
        self.buffered += len(data)
        self.received += len(data)
        if self.buffered >= self.high_water:
            self._flow.body_paused()
        if self.buffered >= self._wake_at:
            self._wake()
        return self.received

    def finish(self) -> None:
        """The body ended where its framing said."""
        self.done = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The body will not end (a client gone or too slow, an instance that broke off)."""
        if not self.done and self.error is None:
            self.error = error
            self._wake()

    # -- the reader's side ------------------------------------------------------------------

    def take(self) -> bytes:
        """Everything held, as one piece; the producer may read again."""
        parts = self._parts
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        self.buffered = 0
        self._flow.body_wanted()
        return data

    async def read_all(self, limit: int = UNBOUNDED) -> bytes | None:
        """The whole body if it is at most *limit* bytes, else None (then :meth:`chunks`)."""
        self.high_water = max(self.high_water, limit + 1)  # never paused below the limit
        self._flow.body_wanted()
        self._wake_at = limit + 1
        while not self.done:
            if self.buffered > limit:
                self._wake_at = 1
                return None
            await self._wait(None)
        self._wake_at = 1
        return self.take() if self.buffered <= limit else None

    def chunks(self, idle_timeout: float | None = None) -> Chunks:
        """The body as it arrives, until it ends or :meth:`stop` is called; each wait for more
        is bounded by *idle_timeout* when given."""
        return Chunks(self, idle_timeout)

    def stop(self) -> None:
        """The reader wants no more of the body: :meth:`chunks` ends."""
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _raise_failure(self) -> None:
        """Raise what the body failed with, if it failed."""
        # A method rather than a test inline in _wait: mypy narrows the attribute across the
        # await there, and a compiled build (mypyc) would then check that it stayed None.
        if self.error is not None:
            raise self.error

    async def _wait(self, timeout: float | None) -> None:
        self._raise_failure()
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = None
        if timeout is not None and self._idle is not None:
            timer = loop.call_later(timeout, self._idle, timeout)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        self._raise_failure()


class Chunks:
    """An async iterator over a body's pieces as they arrive (:meth:`BodyBuffer.chunks`)."""

    __slots__ = ("_body", "_idle", "_started")

    def __init__(self, body: BodyBuffer, idle_timeout: float | None) -> None:
        self._body, self._idle, self._started = body, idle_timeout, False

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        body = self._body
        if not self._started:
            self._started = True
            body._flow.body_wanted()  # the first read asks for the body (100 Continue)
        while not body.stopped:
            if body._parts:
                return body.take()
            if body.done:
                break
            await body._wait(self._idle)
        raise StopAsyncIteration
