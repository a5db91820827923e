"""A scripted upstream on 127.0.0.1 that answers the gateway with malicious bytes.

Requests are parsed by the standard library's ``http.server`` (keep-alive, Content-Length
bodies); answers are raw bytes written by a *script*, one of the functions below. Every
request is recorded, with its place on its connection, so a test can count what arrived.
The server registers in Consul under its own service name with a passing TTL check.

    with HostileUpstream(early_hints) as upstream:
        upstream.register(consul.addr, "hints")
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import socket
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import requests

__all__ = [
    "HostileUpstream",
    "Received",
    "Script",
    "answer_before_the_body",
    "close_on_reused",
    "early_hints",
    "endless_extension",
    "endless_trailer",
    "fixed",
    "hold",
    "large_answer",
    "plain",
    "surplus_after_body",
    "surplus_while_idle",
    "trickled_status",
    "two_lengths",
    "with_cl_and_te",
    "with_trailer",
]


@dataclass(frozen=True)
class Received:
    """One request as the upstream read it; *nth* counts from 1 on its connection."""

    method: str
    path: str
    nth: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the gateway's pool expects
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.nth = 0
        self.server.upstream.connections.add(self.connection)

    def finish(self) -> None:
        self.server.upstream.connections.discard(self.connection)
        super().finish()

    def _scripted(self) -> None:
        self.nth += 1
        length = int(self.headers.get("Content-Length") or 0) if self.server.upstream.reads else 0
        received = Received(
            self.command, self.path, self.nth, self.rfile.read(length), tuple(self.headers.items())
        )
        self.server.upstream.record(received)
        self.server.upstream.script(self, received)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _scripted
    do_TRACE = do_CONNECT = _scripted

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many gateway connections at once (the default is 5)
    upstream: HostileUpstream


Script = Callable[[_Handler, Received], None]


def _answer(received: Received) -> bytes:
    """The body that names the request it answers, so a misdelivered answer shows."""
    return f"{received.method} {received.path}".encode()


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def plain(handler: _Handler, received: Received) -> None:
    """A well-behaved answer, kept alive."""
    handler.wfile.write(_ok(_answer(received)))


def early_hints(handler: _Handler, received: Received) -> None:
    """``103 Early Hints`` first, then the real answer, as gunicorn's ``wsgi.early_hints``."""
    handler.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
    handler.wfile.flush()
    handler.wfile.write(_ok(_answer(received)))


def surplus_after_body(handler: _Handler, received: Received) -> None:
    """A correct answer followed, in the same write, by a second, unrequested one."""
    handler.wfile.write(_ok(_answer(received)) + _ok(b"surplus-poison"))


def surplus_while_idle(handler: _Handler, received: Received) -> None:
    """A correct answer, then an unrequested one a moment later, once the connection idles."""
    handler.wfile.write(_ok(_answer(received)))
    upstream = handler.server.upstream
    if not upstream.stopping.wait(0.2):  # pacing: by then the gateway has read the answer
        handler.wfile.write(_ok(b"surplus-poison"))
        upstream.mark("surplus sent")


def with_cl_and_te(handler: _Handler, received: Received) -> None:
    """Both Content-Length and Transfer-Encoding; the lengths do not agree."""
    body = _answer(received)
    handler.wfile.write(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )
    handler.close_connection = True


def two_lengths(handler: _Handler, received: Received) -> None:
    """Two differing Content-Length headers."""
    body = _answer(received) + b"-and-more"
    handler.wfile.write(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body) - 9, len(body), body)
    )
    handler.close_connection = True


def trickled_status(handler: _Handler, received: Received) -> None:
    """The status line one byte a second (about 40 s), then the rest of the answer."""
    body = _answer(received)
    rest = b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    handler.close_connection = True
    try:
        for byte in b"HTTP/1.1 200 OK but one byte a second\r\n":
            if handler.server.upstream.stopping.wait(1.0):  # pacing, and a prompt stop
                return
            handler.wfile.write(bytes([byte]))
        handler.wfile.write(rest)
    except OSError:  # the gateway gave up on it, as it should
        return


def close_on_reused(handler: _Handler, received: Received) -> None:
    """Answer the first request on a connection; read any later one, then close, silent."""
    if received.nth == 1:
        plain(handler, received)
    else:
        handler.close_connection = True


def fixed(raw: bytes) -> Script:
    """A script that answers every request with *raw*, then closes the connection."""

    def script(handler: _Handler, received: Received) -> None:
        handler.wfile.write(raw)
        handler.close_connection = True

    return script


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
STREAMED = 8 * 1024 * 1024  # what an endless field or extension adds up to before it ends


def with_trailer(handler: _Handler, received: Received) -> None:
    """A chunked answer whose trailer section sets a cookie; kept alive."""
    trailer = b"Set-Cookie: session=from-the-trailer\r\nX-Trailer-Field: yes\r\n\r\n"
    handler.wfile.write(CHUNKED_HEAD + _chunk(_answer(received)) + b"0\r\n" + trailer)


def _stream(handler: _Handler, start: bytes, end: bytes) -> None:
    """Write *start*, then STREAMED filler bytes in 64 KiB pieces, then *end*; then close.

    Marks ``cut`` if the gateway closed the connection before the end was written.
    """
    upstream = handler.server.upstream
    handler.close_connection = True
    piece = b"a" * 65536
    try:
        handler.wfile.write(start)
        for _ in range(STREAMED // len(piece)):
            if upstream.stopping.is_set():
                return
            handler.wfile.write(piece)
        handler.wfile.write(end)
    except OSError:
        upstream.mark("cut")


def endless_trailer(handler: _Handler, received: Received) -> None:
    """A chunked answer whose one trailer field runs to 8 MiB before the answer ends."""
    body = _chunk(_answer(received))
    _stream(handler, CHUNKED_HEAD + body + b"0\r\nX-Huge: ", b"\r\n\r\n")


def endless_extension(handler: _Handler, received: Received) -> None:
    """A chunked answer whose first chunk carries an 8 MiB chunk extension."""
    body = _answer(received)
    _stream(
        handler,
        CHUNKED_HEAD + b"%x;ext=" % len(body),
        b"\r\n%s\r\n0\r\n\r\n" % body,
    )


def _unread(sock: socket.socket) -> int:
    """Bytes that arrived on *sock* and were not read yet."""
    queued = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, queued)
    return queued[0]


def _wait_for_close(handler: _Handler) -> None:
    """Read and drop whatever comes until the gateway closes; mark ``closed by the gateway``."""
    upstream = handler.server.upstream
    handler.close_connection = True
    sock = handler.connection  # not rfile: a read that timed out would poison it for good
    sock.settimeout(0.2)
    while not upstream.stopping.is_set():
        try:
            if sock.recv(65536):
                continue
        except TimeoutError:
            continue
        except OSError:  # a reset is a close too
            pass
        upstream.mark("closed by the gateway")
        return


def answer_before_the_body(handler: _Handler, received: Received) -> None:
    """413 without reading the body, once the gateway has filled this connection's receive
    buffer (so it is waiting to send more). For ``/close...`` the connection is then closed
    unread; otherwise nothing is read until the test sets ``release``, and then the rest is
    dropped until the gateway closes.

    Use with ``HostileUpstream(..., reads=False)``.
    """
    upstream = handler.server.upstream
    last = -1
    while not upstream.stopping.wait(0.1):  # pacing: the buffer is full once it stops growing
        queued = _unread(handler.connection)
        if queued == last and queued > 0:
            break
        last = queued
    body = b"the instance's own 413"
    handler.wfile.write(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    upstream.mark("answered early")
    if received.path.startswith("/close"):
        # As gunicorn does after an early answer: close with the body unread (a reset).
        handler.close_connection = True
        return
    while not upstream.release.wait(0.1):
        if upstream.stopping.is_set():
            return
    _wait_for_close(handler)


def hold(handler: _Handler, received: Received) -> None:
    """Answer ``/fast...`` at once; hold any other request unanswered until the gateway
    closes the connection (marked ``closed by the gateway``)."""
    if received.path.startswith("/fast"):
        plain(handler, received)
    else:
        _wait_for_close(handler)


LARGE = 64 * 1024 * 1024


def large_answer(handler: _Handler, received: Received) -> None:
    """A 64 MiB answer, written as fast as the gateway takes it. Marks ``stalled`` once per
    connection when the gateway stops taking it (nothing could be written for half a second),
    then carries on until the answer ends or the connection closes."""
    upstream = handler.server.upstream
    handler.close_connection = True
    sock = handler.connection
    piece = memoryview(b"z" * 65536)
    left, stalled = LARGE, False
    try:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % LARGE)
        sock.settimeout(0.5)
        while left and not upstream.stopping.is_set():
            try:
                left -= sock.send(piece[: min(left, len(piece))])
            except TimeoutError:
                if not stalled:
                    stalled = True
                    upstream.mark("stalled")
    except OSError:
        return


class HostileUpstream:
    """A threaded server running one script; use it in a ``with`` block.

    With *reads* False the request body is left to the script (none is read before it runs).
    """

    def __init__(self, script: Script, reads: bool = True) -> None:
        self.script = script
        self.reads = reads
        self.stopping = threading.Event()
        self.release = threading.Event()  # for scripts that wait for the test to go on
        self.received: list[Received] = []
        self.marks: list[str] = []  # what scripts report doing, for tests to wait on
        self.connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.upstream = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._registered: tuple[str, str] | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def mark(self, what: str) -> None:
        with self._lock:
            self.marks.append(what)

    def marked(self, what: str) -> int:
        """How many times a script reported *what*."""
        with self._lock:
            return self.marks.count(what)

    def count(self, method: str, path: str) -> int:
        """How many times *method* *path* arrived."""
        with self._lock:
            return sum(1 for r in self.received if (r.method, r.path) == (method, path))

    def register(self, consul: str, name: str, ident: str | None = None) -> None:
        """Register as *name* in Consul with a TTL check that passes for the test's length.

        *ident* is the instance ID (``<name>-<port>`` by default): any string Consul takes.
        """
        ident = ident if ident is not None else f"{name}-{self.port}"
        registration = {
            "Name": name,
            "ID": ident,
            "Address": "127.0.0.1",
            "Port": self.port,
            "Check": {"TTL": "30m", "Status": "passing"},
        }
        requests.put(
            f"{consul}/v1/agent/service/register", json=registration, timeout=5
        ).raise_for_status()
        self._registered = (consul, ident)

    def close(self) -> None:
        """Deregister, stop serving and release the port."""
        if self._registered:
            consul, ident = self._registered
            requests.put(f"{consul}/v1/agent/service/deregister/{quote(ident, safe='')}", timeout=5)
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self.connections):  # kept-alive ones would wait for the gateway
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def __enter__(self) -> HostileUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
