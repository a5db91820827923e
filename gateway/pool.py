"""Keep-alive connections to upstream instances, lent one request at a time.

Reuse saves a TCP handshake and an accept per request. A connection is lent by :meth:`Pool.lease`
(an idle one, else a new one) and comes back only through :meth:`Pool.release`, which keeps it
if its answer was read exactly to the end (:meth:`UpstreamConnection.reusable`) and closes it
otherwise; the proxy calls it in a ``finally``, so no path can leak one or pool a bad one. An
idle connection the instance closes is noticed at once by the event loop and never lent, and
the idle connections of an instance that left Consul are closed (:meth:`Pool.retain`).

How a connection is made is a seam (:class:`Connector`): TCP by default, in memory in tests.
"""

from __future__ import annotations

import asyncio
import errno
from collections import deque
from collections.abc import Callable, Collection
from typing import Protocol

from gateway.deadlines import Deadlines
from gateway.errors import ConnectFailed, LocalResourceError
from gateway.upstream import CLOSED, IDLE, UpstreamConnection

Key = tuple[str, int]  # an instance's (address, port)

# The gateway's own shortages when it opens a connection (no descriptor in the process or the
# system, no socket buffer or memory, no free local port): no fault of the instance.
LOCAL_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}
)


class Connector(Protocol):
    """Opens a connection to *key* whose protocol *factory* makes; raises OSError if it fails."""

    async def __call__(
        self, factory: Callable[[], UpstreamConnection], key: Key
    ) -> UpstreamConnection: ...


async def tcp(factory: Callable[[], UpstreamConnection], key: Key) -> UpstreamConnection:
    """A TCP connection on the running event loop (the default connector)."""
    _, conn = await asyncio.get_running_loop().create_connection(factory, key[0], key[1])
    return conn


class Pool:
    """Idle connections by instance address, reused last-in first-out."""

    def __init__(
        self,
        connect_timeout: float,
        idle_timeout: float = 30.0,
        max_idle: int = 64,
        connector: Connector = tcp,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self.connector = connector
        self.deadlines = Deadlines()
        self._idle: dict[Key, deque[UpstreamConnection]] = {}

    def idle(self, key: Key) -> UpstreamConnection | None:
        """A live idle connection to *key*, lent now, or None."""
        idle = self._idle.get(key)
        if idle:
            conn = idle.pop()
            oldest = conn.loop.time() - self.idle_timeout
            while True:
                if conn.state == IDLE and conn.idle_since >= oldest:
                    conn.reused = True
                    return conn
                conn.close()
                if not idle:
                    break
                conn = idle.pop()
        return None

    async def lease(self, key: Key) -> UpstreamConnection:
        """An idle connection to *key* if a live one exists, else a new one; give it back with
        :meth:`release`, whatever happens."""
        return self.idle(key) or await self.connect(key)

    async def connect(self, key: Key) -> UpstreamConnection:
        """A new connection; ConnectFailed, or LocalResourceError for the gateway's own lack."""
        try:
            return await asyncio.wait_for(
                self.connector(lambda: UpstreamConnection(key, self.deadlines), key),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            if exc.errno in LOCAL_ERRNOS:
                reason = errno.errorcode[exc.errno]
                raise LocalResourceError(
                    f"no connection tried: {reason} ({exc.strerror})", reason
                ) from exc
            raise ConnectFailed.of(exc) from exc

    def release(self, conn: UpstreamConnection) -> None:
        """Take a lent connection back: kept if its answer ended exactly, else closed."""
        if not conn.reusable():
            if conn.state != CLOSED:
                conn.close()
            return
        conn.answer = None
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = deque()
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.state = IDLE
        conn.idle_since = conn.loop.time()
        idle.append(conn)

    def discard_host(self, key: Key) -> None:
        """Close every idle connection to an instance that failed or left."""
        idle = self._idle.pop(key, None)
        while idle:
            idle.pop().close()

    def retain(self, keys: Collection[Key]) -> None:
        """Close the idle connections of every instance not among *keys* (Consul's listing)."""
        for key in [k for k in self._idle if k not in keys]:
            self.discard_host(key)
