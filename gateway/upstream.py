"""One attempt at one upstream instance: send the request, read the status and headers.

Kept apart from the proxy's retry loop so each outcome is a distinct type the loop can act on:
a connection that never formed (:class:`~gateway.pool.ConnectFailed`), a timeout, a broken
connection, or an answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.client import HTTPException, HTTPResponse

from gateway.pool import Connection, Pool

CHUNK = 64 * 1024


class UpstreamTimeout(Exception):
    """The instance did not answer within the per-try timeout."""


class UpstreamBroken(Exception):
    """The connection broke before an answer arrived; *stale* if it was a reused one."""

    def __init__(self, message: str, stale: bool) -> None:
        super().__init__(message)
        self.stale = stale


def chunked(source: Iterator[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked transfer coding of *source*."""
    for data in source:
        if data:
            yield b"%x\r\n%s\r\n" % (len(data), data)
    yield b"0\r\n\r\n"


def read_chunks(stream: object, length: int | None) -> Iterator[bytes]:
    """Read a WSGI input stream: *length* bytes, or to the end when it is None."""
    read = stream.read  # type: ignore[attr-defined]
    remaining = length
    while remaining is None or remaining > 0:
        data = read(CHUNK if remaining is None else min(CHUNK, remaining))
        if not data:
            if remaining:
                raise ValueError("the client sent less body than its Content-Length")
            return
        if remaining is not None:
            remaining -= len(data)
        yield data


def send(
    pool: Pool,
    key: tuple[str, int],
    method: str,
    head: bytes,
    body: bytes | Iterator[bytes],
    timeout: float,
) -> tuple[Connection, HTTPResponse]:
    """Send one request and wait for its status line; the caller owns the connection after."""
    conn = pool.acquire(key)
    try:
        if isinstance(body, bytes):
            # One write for head and body: fewer syscalls, and no Nagle delay between them.
            conn.send(head + body, timeout)
        else:
            conn.send(head, timeout)
            for data in body:
                conn.sock.sendall(data)
        return conn, conn.response(method)
    except TimeoutError as exc:
        conn.close()
        raise UpstreamTimeout(f"no answer within {timeout:g}s") from exc
    except (OSError, HTTPException) as exc:
        conn.close()
        raise UpstreamBroken(f"{type(exc).__name__}: {exc}", stale=conn.reused) from exc


def drain(conn: Connection, response: HTTPResponse, pool: Pool) -> None:
    """Read an unwanted answer to the end, so its connection can be reused."""
    try:
        while response.read(CHUNK):
            pass
    except (OSError, HTTPException):
        conn.close()
        return
    finish(conn, response, pool)


def finish(conn: Connection, response: HTTPResponse, pool: Pool) -> None:
    """Give the connection back to the pool, or close it if the upstream wants that."""
    response.close()
    if response.will_close:
        conn.close()
    else:
        pool.release(conn)
