"""An ``http.client.HTTPResponse`` whose status line and headers are parsed without ``email``.

The stdlib hands the header block to ``email.parser``, which costs more per answer than the
rest of the proxy's own Python code together. Upstream answers are plain HTTP/1.1 header
lines, so a split on ``:`` is enough; the framing rules below are the stdlib's, unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.client import (
    CONTINUE,
    NO_CONTENT,
    NOT_MODIFIED,
    BadStatusLine,
    HTTPException,
    HTTPResponse,
    LineTooLong,
    RemoteDisconnected,
    UnknownProtocol,
)

MAX_LINE = 65536
MAX_HEADERS = 100


class Headers(list[tuple[str, str]]):
    """Header pairs in order; ``get`` is case-insensitive, like ``email.message.Message``."""

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self:
            if key.lower() == name:
                return value
        return default

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        name = name.lower()
        found = [value for key, value in self if key.lower() == name]
        return found or default

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self)


class FastResponse(HTTPResponse):
    """Reads the status and headers itself; body reading is the stdlib's."""

    def _line(self) -> bytes:
        line: bytes = self.fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise LineTooLong("header line")
        return line

    def _header_block(self) -> Headers:
        headers = Headers()
        while (line := self._line()) not in (b"\r\n", b"\n", b""):
            if len(headers) >= MAX_HEADERS:
                raise HTTPException(f"got more than {MAX_HEADERS} headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or name != name.strip():
                raise HTTPException(f"malformed header line {line[:80]!r}")
            headers.append((name, value.strip()))
        return headers

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            raw = self._line()
            if not raw:
                raise RemoteDisconnected("Remote end closed connection without response")
            version, _, rest = raw.decode("latin-1").rstrip("\r\n").partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
                raise BadStatusLine(raw.decode("latin-1"))
            if int(code) != CONTINUE:
                break
            self._header_block()  # the headers of an interim 100 Continue
        self.code = self.status = status = int(code)
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise UnknownProtocol(version)
        self.headers = self.msg = self._header_block()
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding) and encoding.lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked and length.isdigit():
            self.length = int(length)
        if status in (NO_CONTENT, NOT_MODIFIED) or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True
