"""The gateway's fast response parser agrees with http.client field for field (no sockets)."""

from __future__ import annotations

import io
from http.client import HTTPException, HTTPResponse

import pytest

from gateway.response import FastResponse


class FakeSocket:
    """Just enough of a socket for HTTPResponse: ``makefile`` over fixed bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.data)


CASES = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "connection close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    "http/1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "no reason phrase": b"HTTP/1.1 204\r\n\r\n",
    "not modified": b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
    "100 continue first": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    "repeated headers": b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    "no framing": b"HTTP/1.1 200 OK\r\nX-A:  spaced\r\n\r\nbody",
}


def parse(cls: type[HTTPResponse], data: bytes, method: str = "GET") -> HTTPResponse:
    response = cls(FakeSocket(data), method=method)  # type: ignore[arg-type]
    response.begin()
    return response


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_fast_parser_matches_the_standard_library(name: str, method: str) -> None:
    fast, std = parse(FastResponse, CASES[name], method), parse(HTTPResponse, CASES[name], method)
    fields = ("status", "reason", "version", "chunked", "length", "will_close")
    assert {f: getattr(fast, f) for f in fields} == {f: getattr(std, f) for f in fields}
    assert fast.getheaders() == std.getheaders()
    assert fast.getheader("set-cookie") == std.getheader("set-cookie")
    assert fast.read() == std.read()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded continuation\r\n\r\n",
    ],
)
def test_malformed_answers_raise_http_exceptions(data: bytes) -> None:
    with pytest.raises(HTTPException):
        parse(FastResponse, data)


def test_surrounding_whitespace_is_not_part_of_a_value() -> None:
    # RFC 9110 section 5.5: leading and trailing whitespace around a field value is dropped
    # (the stdlib keeps the trailing part).
    assert parse(FastResponse, b"HTTP/1.1 200 OK\r\nX-A:  v  \r\n\r\n").getheader("x-a") == "v"
