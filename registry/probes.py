"""One run of an HTTP or TCP check, with Consul's verdicts and Output texts.

Mirrors ``CheckHTTP.check`` and ``CheckTCP.check`` in agent/checks/check.go: 2xx is passing,
429 is warning, any other status or no answer is critical. The Output is
``HTTP GET <url>: <status line> Output: <body>`` (last 4 KiB of the body, like Consul's
circular buffer) or, when there is no answer, the error as Go's HTTP client words it.
"""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from http import HTTPStatus
from http.client import HTTPResponse
from urllib.parse import urlsplit

from .durations import WAIT_PIECE
from .model import CRITICAL, PASSING, WARNING, CheckSpec

USER_AGENT = "Consul Health Check"
OUTPUT_MAX = 4 * 1024
DEFAULT_TIMEOUT = 10.0
DEADLINE_TEXT = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def probe_http(spec: CheckSpec) -> tuple[str, str]:
    """Request ``spec.http`` once and return (status, output)."""
    method = spec.method or "GET"
    timeout = _timeout(spec)
    request = urllib.request.Request(spec.http, data=spec.body.encode() or None, method=method)
    for name, values in spec.header:
        request.add_header(name, ", ".join(values))
    if not request.has_header("User-agent"):
        request.add_header("User-Agent", USER_AGENT)
    if not request.has_header("Accept"):
        request.add_header("Accept", "text/plain, text/*, */*")
    context = ssl.create_default_context()
    if spec.tls_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    # Checks target service addresses directly; never through a proxy from the environment.
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=context),
    ]
    if spec.disable_redirects:
        handlers.append(_NoRedirect())
    opener = urllib.request.build_opener(*handlers)
    try:
        response: HTTPResponse | urllib.error.HTTPError = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        response = err
    except (urllib.error.URLError, OSError) as err:
        op = method[:1].upper() + method[1:].lower()
        return CRITICAL, f'{op} "{spec.http}": {_describe(err, spec.http)}'
    with response:
        try:
            body = _read_tail(response)
        except OSError:
            body = ""
    code = response.status if isinstance(response, HTTPResponse) else response.code
    reason = response.reason or _standard_reason(code)
    output = f"HTTP {method} {spec.http}: {code} {reason} Output: {body}"
    if 200 <= code <= 299:
        return PASSING, output
    if code == 429:
        return WARNING, output
    return CRITICAL, output


def probe_tcp(spec: CheckSpec) -> tuple[str, str]:
    """Open a TCP connection to ``spec.tcp`` once and return (status, output)."""
    timeout = _timeout(spec)
    host, _, port = spec.tcp.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as err:
        return CRITICAL, _dial_error(err, spec.tcp)
    return PASSING, f"TCP connect {spec.tcp}: Success"


def _timeout(spec: CheckSpec) -> float:
    if spec.timeout_ns <= 0:
        return DEFAULT_TIMEOUT
    return min(spec.timeout_ns / 1e9, WAIT_PIECE)


def _standard_reason(code: int) -> str:
    # Go's resp.Status falls back to http.StatusText when the server sends no reason phrase.
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _read_tail(response: HTTPResponse | urllib.error.HTTPError) -> str:
    tail = b""
    while chunk := response.read(64 * 1024):
        tail = (tail + chunk)[-OUTPUT_MAX:]
    return tail.decode("utf-8", errors="replace")


def _describe(err: BaseException, url: str) -> str:
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return DEADLINE_TEXT
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    target = f"{parts.hostname}:{parts.port or default_port}"
    if isinstance(reason, BaseException):
        return _dial_error(reason, target)
    return str(reason)


def _dial_error(err: BaseException, target: str) -> str:
    if isinstance(err, ConnectionRefusedError):
        return f"dial tcp {target}: connect: connection refused"
    if isinstance(err, (TimeoutError, socket.timeout)):
        return f"dial tcp {target}: i/o timeout"
    if isinstance(err, socket.gaierror):
        return f"dial tcp: lookup {target.rpartition(':')[0]}: no such host"
    return f"dial tcp {target}: {err}"
