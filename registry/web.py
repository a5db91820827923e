"""HTTP plumbing: the request and response types handlers use, and the threaded server.

Responses follow Consul's ``wrap`` in agent/http.go: JSON bodies pretty-printed as a dev agent
prints them, errors as text/plain, 405 with an Allow header for a wrong method, an empty 404
for unknown paths. One line per request goes to the log (stderr), the ``token`` parameter
hidden (headers are never logged). Bodies are read by ``body``, capped in size.

Each socket operation times out after ``read_timeout`` (30 s, ``config``), so a client that
stops sending its request, or stops reading its answer, frees its thread. A blocking query waits on the
store, not on its socket, so it holds the answer as long as its ``wait`` asks; if its client
disconnects meanwhile, the query is cancelled and its thread freed at once (``disconnects``). A
client that goes away (often a watcher stopped mid-query) is a debug line, not a traceback.

One thread serves each connection, so connections are limited per client address as Consul
limits them (``limits.http_max_conns_per_client``, 200 by default, go-connlimit): one more is
answered 429 with go-connlimit's text and closed before any thread starts for it.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from .body import BodyError, read_body
from .disconnects import Cancel, DisconnectWatcher
from .errors import ApiError

log = logging.getLogger("registry.http")
_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")


@dataclass(frozen=True)
class Request:
    """What a handler sees of a request."""

    method: str
    path: str
    query: dict[str, list[str]]
    #: Header names lower-cased: HTTP header names are case-insensitive.
    headers: dict[str, str]
    body: bytes
    #: Set when the client disconnects; a blocking query then stops waiting.
    cancel: Cancel = field(default_factory=Cancel, compare=False)

    def param(self, name: str) -> str:
        """The first value of a query parameter, or ""."""
        return self.query.get(name, [""])[0]

    def has(self, name: str) -> bool:
        """True when the query parameter is present, even without a value."""
        return name in self.query


class _JsonNull:
    """The JSON ``null`` answer, which Go's encoder writes for a nil pointer."""


#: A body of JSON ``null``: ``Response(body=None)`` is an empty answer instead.
JSON_NULL = _JsonNull()


@dataclass
class Response:
    """A JSON (``body``) or plain-text (``text``) answer; None for both is an empty 200."""

    status: int = 200
    body: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


Dispatch = Callable[[Request], Response]

#: What go-connlimit writes to a connection over the per-client limit, before closing it.
TOO_MANY_CONNS_TEXT = (
    "Your IP is issuing too many concurrent connections, please rate limit your calls\n"
)
TOO_MANY_CONNS = (
    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
    f"Content-Length: {len(TOO_MANY_CONNS_TEXT)}\r\nConnection: close\r\n\r\n"
    f"{TOO_MANY_CONNS_TEXT}"
).encode()
#: go-connlimit gives a refused client this long to take the 429 (``writeDeadlineMaxDelay``).
REFUSAL_WRITE_TIMEOUT = 0.01


class Server(ThreadingHTTPServer):
    """A threaded HTTP server whose connection threads never block shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    # Room for many simultaneous blocking queries connecting at once.
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        dispatch: Dispatch,
        read_timeout: float,
        max_conns_per_client: int = 200,
    ) -> None:
        super().__init__(address, Handler)
        self.dispatch = dispatch
        self.read_timeout = read_timeout
        #: 0 means no limit, as in Consul.
        self.max_conns_per_client = max_conns_per_client
        self.disconnects = DisconnectWatcher()
        self._conns_lock = threading.Lock()
        # Open connections per client address, and each admitted socket's address.
        self._per_client: dict[str, int] = {}
        self._admitted: dict[socket.socket, str] = {}
        # Addresses refused since they last dropped below the limit (for the log).
        self._refusing: set[str] = set()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admit the connection unless its address holds ``max_conns_per_client`` already."""
        key = str(client_address[0])
        with self._conns_lock:
            held = self._per_client.get(key, 0)
            if not self.max_conns_per_client or held < self.max_conns_per_client:
                self._per_client[key] = held + 1
                self._admitted[request] = key
                return True
            first = key not in self._refusing
            self._refusing.add(key)
        if first:  # one line per episode, not one per refused connection
            log.warning(
                "refusing connections from %s with 429: it holds %d, the limit per client "
                "address (--http-max-conns-per-client)",
                key,
                held,
            )
        _refuse(request)
        return False

    def shutdown_request(self, request: Any) -> None:
        """Close the connection and free its place in the per-client count."""
        with self._conns_lock:
            key = self._admitted.pop(request, None)
            if key is not None:
                self._per_client[key] -= 1
                self._refusing.discard(key)
                if not self._per_client[key]:
                    del self._per_client[key]
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Close the listener and stop watching for disconnects."""
        super().server_close()
        self.disconnects.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone or timed out is routine; anything else is logged with its traceback."""
        if isinstance(_current_exception(), (ConnectionError, TimeoutError)):
            log.debug("connection from %s:%s ended early", *client_address[:2])
            return
        log.exception("connection from %s:%s failed", *client_address[:2])


class Handler(BaseHTTPRequestHandler):
    """Turns each HTTP request into a ``Request`` and writes back the ``Response``."""

    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "mesh-registry"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm holds the
    # body until the client's delayed ACK (~40 ms). Consul's Go server sets TCP_NODELAY too.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        """Open the connection's streams with the server's socket timeout."""
        super().setup()
        self.connection.settimeout(self.server.read_timeout)

    def do_GET(self) -> None:
        """Handle GET."""
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's own log; ``_handle`` writes one line per request."""

    def _handle(self) -> None:
        started = time.monotonic()
        response = self._respond()
        self._write(response)
        latency = (time.monotonic() - started) * 1000
        log.info(
            "Request finished: method=%s url=%s from=%s:%s status=%d latency=%.1fms",
            self.command,
            hide_tokens(self.path),
            *self.client_address[:2],
            response.status,
            latency,
        )

    def _respond(self) -> Response:
        # A client that leaves while sending its body raises ConnectionError out of here, to
        # Server.handle_error; read_body turns every other client fault into a BodyError.
        try:
            body = read_body(self.rfile, self.headers)
        except BodyError as err:
            # The rest of the body is unread, so the connection cannot carry another request.
            self.close_connection = True
            return Response(err.status, text=err.text, headers={"Connection": "close"})
        parts = urlsplit(self.path)
        try:
            request = Request(
                method=self.command,
                path=decode_path(parts.path),
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                cancel=Cancel(lambda gone: self.server.disconnects.watch(self.connection, gone)),
            )
            response = self.server.dispatch(request)
            if request.cancel.is_set():
                raise ClientGone(
                    f"client {self.client_address[0]}:{self.client_address[1]} left "
                    "during a blocking query; the query is cancelled"
                )
            return response
        except ApiError as err:
            return Response(status=err.status, text=err.text)
        except ClientGone:
            raise  # to Server.handle_error, as a client gone mid-request: nothing is written
        except Exception as err:  # a handler bug must still answer, as Go's 500 does
            log.exception("handler failed")
            return Response(status=500, text=str(err))

    def _write(self, response: Response) -> None:
        payload = b""
        content_type = None
        if response.text is not None:
            payload, content_type = response.text.encode(), "text/plain; charset=utf-8"
        elif response.body is not None:
            body = None if response.body is JSON_NULL else response.body
            text = json.dumps(body, indent=4, ensure_ascii=False) + "\n"
            payload, content_type = text.encode(), "application/json"
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (ConnectionError, TimeoutError):
            # The client gave up, often on a blocking query it stopped waiting for.
            log.debug("client %s:%s left before its answer", *self.client_address[:2])
            self.close_connection = True


class ClientGone(ConnectionAbortedError):
    """The client disconnected while its request waited: there is no one to answer."""


def _refuse(sock: Any) -> None:
    try:
        sock.settimeout(REFUSAL_WRITE_TIMEOUT)
        sock.sendall(TOO_MANY_CONNS)
    except OSError:
        pass  # a slow or gone client: closing is all that is left


def decode_path(raw: str) -> str:
    """The URL-decoded path, as Go's ``URL.Path``; a malformed escape is a 400 as in Go."""
    if _BAD_ESCAPE.search(raw):
        raise ApiError(400, f"invalid URL escape in path {raw!r}")
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError as err:
        raise ApiError(400, f"path {raw!r} is not UTF-8 once decoded") from err


def parse_go_bool(text: str) -> bool | None:
    """Go's ``strconv.ParseBool``: True, False, or None for anything else."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def hide_tokens(target: str) -> str:
    """The request target with every ``token`` parameter's value replaced by ``<hidden>``.

    Each parameter's name is decoded as ``parse_qs`` decodes it, so ``%74oken=`` is caught too;
    the other parameters are kept exactly as sent.
    """
    path, mark, raw_query = target.partition("?")
    if not mark:
        return target
    params = raw_query.split("&")
    for position, param in enumerate(params):
        if unquote_plus(param.partition("=")[0]) == "token":
            params[position] = "token=<hidden>"
    return f"{path}?{'&'.join(params)}"


def _current_exception() -> BaseException | None:
    return sys.exc_info()[1]
