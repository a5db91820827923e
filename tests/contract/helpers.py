"""Helpers for contract tests: polling with a deadline, and a tiny HTTP target for checks."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from tests.polling import wait_for

__all__ = ["Api", "StatusServer", "wait_for"]


class StatusServer:
    """An HTTP server on 127.0.0.1 that answers every request with a settable status code."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"ok"
        self.delay = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if owner.delay:
                    time.sleep(owner.delay)  # a slow target, not a wait on state
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The URL a check should probe."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/health"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Api:
    """Plain HTTP access to one Consul agent (no environment proxies); use it in a ``with``."""

    def __init__(self, addr: str, token: str | None = None) -> None:
        self.addr = addr
        self.session = requests.Session()
        self.session.trust_env = False
        if token:
            self.session.headers["X-Consul-Token"] = token

    def get(self, path: str, deadline: float = 90, **params: Any) -> requests.Response:
        """GET ``path`` with query parameters; the answer must come within *deadline* seconds
        (long enough for any blocking query the tests make, unless a test sets it shorter)."""
        return self.session.get(f"{self.addr}{path}", params=params, timeout=deadline)

    def put(
        self, path: str, json: Any = None, data: Any = None, **params: Any
    ) -> requests.Response:
        """PUT ``path`` with a JSON or raw body."""
        return self.session.put(
            f"{self.addr}{path}", params=params, json=json, data=data, timeout=30
        )

    def index(self, path: str, **params: Any) -> int:
        """The X-Consul-Index of a GET."""
        response = self.get(path, **params)
        response.raise_for_status()
        return int(response.headers["X-Consul-Index"])

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()
