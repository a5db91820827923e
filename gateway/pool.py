"""Keep-alive connections to upstream instances, and the deadlines of their attempts.

Reuse saves a TCP handshake and an accept per request. An idle connection the instance closes
is noticed at once by the event loop (``connection_lost``) and never handed out; one whose
answer did not end exactly where its framing said is never kept (:meth:`Pool.release`).
"""

from __future__ import annotations

import asyncio
import errno
from collections import deque

from gateway.upstream import Answer, ConnectFailed, LocalResourceError, UpstreamConnection

# The gateway's own shortages when it opens a connection (no descriptor in the process or the
# system, no socket buffer or memory, no free local port): no fault of the instance.
LOCAL_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}
)


class Deadlines:
    """The attempt deadlines of one worker, checked ten times a second.

    A timer per request (create, then cancel) cost about a fifteenth of the proxy's own CPU
    per request; a list append is nearly free. A deadline is therefore kept to within a tenth
    of a second, and the check only looks at attempts still waiting for their answer.
    """

    TICK = 0.1

    def __init__(self) -> None:
        self._entries: list[tuple[float, Answer, float]] = []
        self._scheduled = False

    def add(self, answer: Answer, seconds: float) -> None:
        """Fail *answer* with UpstreamTimeout if it has not ended after *seconds*."""
        loop = answer.conn.loop
        answer.timed = True
        self._entries.append((loop.time() + seconds, answer, seconds))
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(self.TICK, self._check, loop)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        waiting = []
        for entry in self._entries:
            deadline, answer, seconds = entry
            if not answer.timed:
                continue
            if now >= deadline:
                answer.conn.time_out(seconds)
            else:
                waiting.append(entry)
        self._entries = waiting
        self._scheduled = bool(waiting)
        if waiting:
            loop.call_later(self.TICK, self._check, loop)


class Pool:
    """Idle connections by ``(host, port)``, reused last-in first-out.

    Reuse saves a TCP handshake and an accept per request. An idle connection the instance
    closes is noticed at once by the event loop (``connection_lost``) and never handed out.
    """

    def __init__(
        self, connect_timeout: float, idle_timeout: float = 30.0, max_idle: int = 64
    ) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self.deadlines = Deadlines()
        self._idle: dict[tuple[str, int], deque[UpstreamConnection]] = {}

    async def acquire(self, key: tuple[str, int]) -> UpstreamConnection:
        """An idle connection to *key* if a live one exists, else a new one."""
        idle = self._idle.get(key)
        if idle:
            loop = asyncio.get_running_loop()
            oldest = loop.time() - self.idle_timeout
            while idle:
                conn = idle.pop()
                if not conn.lost and conn.idle_since >= oldest:
                    conn.reused = True
                    return conn
                conn.close()
        return await self.connect(key)

    async def connect(self, key: tuple[str, int]) -> UpstreamConnection:
        """A new connection, or ConnectFailed."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(key, self.deadlines), key[0], key[1]
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            if exc.errno in LOCAL_ERRNOS:
                reason = errno.errorcode[exc.errno]
                raise LocalResourceError(
                    f"no connection tried: {reason} ({exc.strerror})", reason
                ) from exc
            raise ConnectFailed(f"connect failed: {exc.strerror or type(exc).__name__}") from exc
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Keep a connection whose answer was read exactly to its end; close any other."""
        answer = conn.answer
        conn.answer = None
        if (
            conn.lost
            or not conn.reusable
            or answer is None
            or not answer.done
            or not answer.keep_alive
        ):
            conn.close()
            return
        idle = self._idle.setdefault(conn.key, deque())
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = conn.loop.time()
        idle.append(conn)

    def discard_host(self, key: tuple[str, int]) -> None:
        """Close every idle connection to an instance that left or failed."""
        idle = self._idle.pop(key, None)
        while idle:
            idle.pop().close()
