"""A scripted upstream on 127.0.0.1 that answers the gateway with malicious bytes.

Requests are parsed by the standard library's ``http.server`` (keep-alive, Content-Length
bodies); answers are raw bytes written by a *script*, one of the functions below. Every
request is recorded, with its place on its connection, so a test can count what arrived.
The server registers in Consul under its own service name with a passing TTL check.

    with HostileUpstream(early_hints) as upstream:
        upstream.register(consul.addr, "hints")
"""

from __future__ import annotations

import contextlib
import socket
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
    "close_on_reused",
    "early_hints",
    "plain",
    "surplus_after_body",
    "surplus_while_idle",
    "trickled_status",
    "two_lengths",
    "with_cl_and_te",
]


@dataclass(frozen=True)
class Received:
    """One request as the upstream read it; *nth* counts from 1 on its connection."""

    method: str
    path: str
    nth: int
    body: bytes


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
        length = int(self.headers.get("Content-Length") or 0)
        received = Received(self.command, self.path, self.nth, self.rfile.read(length))
        self.server.upstream.record(received)
        self.server.upstream.script(self, received)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _scripted
    do_TRACE = do_CONNECT = _scripted

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
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


class HostileUpstream:
    """A threaded server running one script; use it in a ``with`` block."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.stopping = threading.Event()
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
