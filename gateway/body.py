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
from collections.abc import AsyncIterator, Callable
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

    async def chunks(self, idle_timeout: float | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives, until it ends or :meth:`stop` is called; each wait for more
        is bounded by *idle_timeout* when given."""
        self._flow.body_wanted()
        while not self.stopped:
            if self._parts:
                yield self.take()
            elif self.done:
                return
            else:
                await self._wait(idle_timeout)

    def stop(self) -> None:
        """The reader wants no more of the body: :meth:`chunks` ends."""
        self.stopped = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout: float | None) -> None:
        if self.error is not None:
            raise self.error
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
        if self.error is not None:
            raise self.error
