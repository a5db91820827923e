"""Keep-alive connections to upstream instances, reused last-in first-out.

Reusing a connection saves a TCP handshake and a gunicorn accept per request, which is most
of what separates a fast proxy from a slow one. Idle connections are dropped after
``idle_timeout``, shorter than the services' gunicorn ``keepalive``, so the gateway closes an
idle connection before the upstream does and rarely writes into a half-closed socket.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from http.client import HTTPResponse

from gateway.response import FastResponse


class ConnectFailed(OSError):
    """The TCP connection could not be made: the request was never sent."""


class Connection:
    """One TCP connection to an upstream instance."""

    __slots__ = ("key", "last_used", "reused", "sock")

    def __init__(self, key: tuple[str, int], connect_timeout: float) -> None:
        self.key = key
        try:
            self.sock = socket.create_connection(key, timeout=connect_timeout)
        except OSError as exc:
            raise ConnectFailed(f"connect to {key[0]}:{key[1]} failed: {exc}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.last_used = time.monotonic()
        self.reused = False

    def send(self, data: bytes, timeout: float) -> None:
        """Write *data*, waiting at most *timeout* seconds for the socket."""
        self.sock.settimeout(timeout)
        self.sock.sendall(data)

    def response(self, method: str) -> HTTPResponse:
        """Read the status line and headers of the answer."""
        response = FastResponse(self.sock, method=method)
        response.begin()
        return response

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        self.sock.close()


class Pool:
    """Idle connections by ``(host, port)``; deque appends and pops are atomic under the GIL."""

    def __init__(
        self, connect_timeout: float, idle_timeout: float = 30.0, max_idle: int = 32
    ) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], deque[Connection]] = {}

    def acquire(self, key: tuple[str, int]) -> Connection:
        """An idle connection to *key* if a fresh one exists, else a new one."""
        idle = self._idle.get(key)
        if idle:
            deadline = time.monotonic() - self.idle_timeout
            while True:
                try:
                    conn = idle.pop()
                except IndexError:
                    break
                if conn.last_used >= deadline:
                    conn.reused = True
                    return conn
                conn.close()
        return Connection(key, self.connect_timeout)

    def release(self, conn: Connection) -> None:
        """Return a connection whose response was read to the end."""
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle.setdefault(conn.key, deque())
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.last_used = time.monotonic()
        idle.append(conn)

    def discard_host(self, key: tuple[str, int]) -> None:
        """Close every idle connection to an instance that left or failed."""
        idle = self._idle.pop(key, None)
        while idle:
            idle.pop().close()
