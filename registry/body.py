"""Reading a request's body: Content-Length or chunked framing, capped in size.

A body larger than ``MAX_BODY_BYTES`` is a 413; a Content-Length or chunk size that does not
parse is a 400; a transfer coding other than chunked is a 501, as Go's server answers it; a
body that stalls past the socket timeout is a 408. After any of these the connection closes,
since the rest of the body is left unread. Consul sets no
such cap on agent endpoints (only KV values, 512 KiB, are capped); the registry caps bodies so
one client cannot fill its memory. A registration is a few KiB; 1 MiB leaves ample room.
"""

from __future__ import annotations

import re
from email.message import Message
from io import BufferedIOBase

from .errors import ApiError

MAX_BODY_BYTES = 1024 * 1024
#: Longest chunk-size or trailer line; http.server allows the same for header lines.
_MAX_LINE = 65536
_HEX = re.compile(rb"[0-9a-fA-F]{1,16}")


class BodyError(ApiError):
    """The body could not be read: answer, then close the connection."""


def read_body(rfile: BufferedIOBase, headers: Message) -> bytes:
    """The request's body, read as its headers frame it; raise ``BodyError`` when it can't be."""
    try:
        return _read(rfile, headers)
    except TimeoutError:
        raise BodyError(408, "Timed out reading the request body") from None


def _read(rfile: BufferedIOBase, headers: Message) -> bytes:
    coding = (headers.get("Transfer-Encoding") or "").strip().lower()
    if coding == "chunked":
        return _read_chunked(rfile)
    if coding:
        raise BodyError(501, f"Unsupported transfer encoding: {coding}")
    raw = (headers.get("Content-Length") or "0").strip()
    if not raw.isascii() or not raw.isdigit():
        raise BodyError(400, f"Invalid Content-Length: {raw[:40]!r}")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise _too_large(f"{length} bytes")
    body = rfile.read(length) if length else b""
    if len(body) < length:
        raise BodyError(400, "Request body shorter than its Content-Length")
    return body


def _read_chunked(rfile: BufferedIOBase) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        line = _line(rfile)
        size_text = line.split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            raise BodyError(400, f"Invalid chunk size: {size_text[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > MAX_BODY_BYTES:
            raise _too_large(f"more than {MAX_BODY_BYTES} bytes")
        chunk = rfile.read(size)
        if len(chunk) < size:
            raise BodyError(400, "Request body ended inside a chunk")
        chunks.append(chunk)
        _line(rfile)  # the CRLF after the chunk's data
    while _line(rfile).strip():  # trailers, unused
        pass
    return b"".join(chunks)


def _line(rfile: BufferedIOBase) -> bytes:
    line = rfile.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise BodyError(400, "Chunked body line too long")
    if not line:
        raise BodyError(400, "Request body ended inside its chunked framing")
    return line


def _too_large(size: str) -> BodyError:
    # Worded as Consul's KV endpoint words its 413.
    return BodyError(413, f"Request body({size}) too large, max size: {MAX_BODY_BYTES} bytes")
