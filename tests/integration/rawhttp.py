"""Raw-socket HTTP/1.1 for tests that must send bytes no well-behaved client would send.

Requests are written as literal bytes; answers are parsed by the standard library's
``http.client.HTTPResponse``, never by hand. One :class:`RawConnection` reads several answers
from one socket (pipelining), and tells an answer apart from a connection that was closed
without one, or that stayed silent past its deadline.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.client import HTTPException, HTTPMessage, HTTPResponse
from typing import Any, Literal

__all__ = ["Answer", "NoAnswer", "RawConnection", "Reply", "exchange", "request", "upload"]


@dataclass(frozen=True)
class Answer:
    """A final answer: status, headers (case-insensitive lookup) and the whole body."""

    status: int
    headers: HTTPMessage
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def error_code(self) -> str | None:
        """The ``error`` field of a JSON error body, or None when the body is not one."""
        try:
            body = self.json()
        except ValueError:
            return None
        return body.get("error") if isinstance(body, dict) else None


@dataclass(frozen=True)
class NoAnswer:
    """No final answer: ``closed`` (EOF or reset), ``timeout`` (silent), or ``malformed``."""

    reason: Literal["closed", "timeout", "malformed"]
    detail: str = ""


Reply = Answer | NoAnswer


class _KeepOpen(io.BufferedReader):
    """A reader that outlives each HTTPResponse, which closes its file after every body."""

    def close(self) -> None:
        pass

    def really_close(self) -> None:
        super().close()


class _SocketShim:
    """What HTTPResponse needs from a socket: ``makefile``, answered with the shared reader."""

    def __init__(self, reader: _KeepOpen) -> None:
        self.reader = reader

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> _KeepOpen:
        return self.reader


class RawConnection:
    """One TCP connection to 127.0.0.1; use it in a ``with`` block so it is always closed."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self._reader = _KeepOpen(socket.SocketIO(self.sock, "rb"))

    def send(self, data: bytes) -> bool:
        """Send *data*; False if the peer already closed (its answer may still be readable)."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def shutdown_write(self) -> None:
        """Half-close: the peer sees EOF, and its answer can still arrive."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def read(self, timeout: float | None = None, method: str = "GET") -> Reply:
        """The next final answer (interim 1xx ones are skipped), within *timeout* seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                response = HTTPResponse(_SocketShim(self._reader), method=method)  # type: ignore[arg-type]
                response.begin()
                body = response.read()
                if response.status == 101 or response.status >= 200:
                    return Answer(response.status, response.headers, body)
        except TimeoutError:
            return NoAnswer("timeout")
        except (ConnectionError, EOFError) as exc:
            # RemoteDisconnected (EOF before a status line) is a ConnectionResetError.
            return NoAnswer("closed", repr(exc))
        except (HTTPException, ValueError) as exc:
            return NoAnswer("malformed", repr(exc))

    def at_eof(self, timeout: float = 5.0) -> bool:
        """Whether the peer closed the connection (EOF or reset) within *timeout* seconds."""
        self.sock.settimeout(timeout)
        try:
            return self._reader.read1(1) == b""
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        self._reader.really_close()
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def upload(
    port: int, head: bytes, piece: bytes, count: int, end: bytes = b"", timeout: float = 20.0
) -> Reply:
    """Send *head*, then *piece* up to *count* times and *end*, while reading the reply.

    The pieces go out from a thread, so a reply that comes before the upload ends (an early
    answer, a refusal) is read while the client is still sending, as a real client's would be.
    The sending stops at the reply, or when the peer stops taking bytes or closes.
    """
    stop = threading.Event()
    with RawConnection(port, timeout) as conn:

        def send() -> None:
            for i in range(count):
                if stop.is_set() or not conn.send(piece):
                    print("sender stopped at", i, time.monotonic())
                    return
            conn.send(end)

        conn.send(head)
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            r = conn.read()
            print("read at", time.monotonic())
            return r
        finally:
            stop.set()
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)  # wakes a send blocked on a full buffer
            sender.join(timeout)


def exchange(port: int, data: bytes, answers: int = 1, timeout: float = 10.0) -> list[Reply]:
    """Send *data* on a new connection; read up to *answers* replies, stopping at the first
    :class:`NoAnswer`. ``Connection: close`` does not stop it: what a server sends after
    saying so is exactly what a smuggling test must see."""
    replies: list[Reply] = []
    with RawConnection(port, timeout) as conn:
        conn.send(data)
        for _ in range(answers):
            replies.append(conn.read())
            if isinstance(replies[-1], NoAnswer):
                break
    return replies


def request(port: int, data: bytes, timeout: float = 10.0) -> Reply:
    """Send one request on a new connection; its reply."""
    return exchange(port, data, 1, timeout)[0]
