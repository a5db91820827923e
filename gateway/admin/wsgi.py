"""Runs the Flask admin app (a WSGI callable) for a request of the event-loop front end.

The admin API is off the hot path: a few requests a minute from operators and health checks.
Each one runs in the loop's default thread pool, so a slow metrics scrape never stalls the
proxied traffic of the same worker.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from gateway.answers import status_line
from gateway.errors import ClientError
from gateway.reply import Reply
from gateway.request import Request

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MAX_ADMIN_BODY = 64 * 1024


def environ_for(req: Request, server: tuple[str, int]) -> dict[str, Any]:
    """The PEP 3333 environ of *req*, with an already read *body*."""
    path, _, query = req.target.partition(b"?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method.decode("latin-1"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{req.version}",
        "REMOTE_ADDR": req.peer,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "gateway.request_id": req.request_id,  # for the admin API's JSON errors
    }
    for name, value in req.raw_headers:
        key = name.decode("latin-1").upper()
        if "_" in key:
            continue  # never let a header pose as another (X_Foo and X-Foo are one WSGI key)
        key = key.replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value.decode("latin-1")
        else:
            environ[f"HTTP_{key}"] = value.decode("latin-1")
    return environ


def _run(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    captured: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda data: None

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured[0], captured[1], data


async def call_wsgi(app: WSGIApp, req: Request, reply: Reply, server: tuple[str, int]) -> None:
    """Answer *req* with the WSGI *app*, run in a worker thread."""
    body: bytes | None = b""
    if req.body is not None:
        too_long = req.content_length is not None and req.content_length > MAX_ADMIN_BODY
        body = None if too_long else await req.body.read_all(MAX_ADMIN_BODY)
    if body is None:
        raise ClientError(
            413, "body_too_large", f"admin requests take at most {MAX_ADMIN_BODY} bytes"
        )
    environ = environ_for(req, server)
    environ["wsgi.input"] = io.BytesIO(body)
    environ.setdefault("CONTENT_LENGTH", str(len(body)))
    loop = asyncio.get_running_loop()
    status, headers, data = await loop.run_in_executor(None, _run, app, environ)
    code, _, reason = status.partition(" ")
    lines = [f"{k}: {v}".encode("latin-1") for k, v in headers if k.lower() != "content-length"]
    lines.append(b"X-Request-ID: " + req.request_id.encode())
    reply.whole(int(code), status_line(int(code), reason.encode("latin-1")), lines, data)
