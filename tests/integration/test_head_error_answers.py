"""Every error the gateway answers to HEAD is a head only, as any answer to HEAD must be.

A client reads no body after a HEAD (RFC 9110 §9.3.2), so a body would be read as the start of
the next answer on a kept-alive connection (Node's client fails with HPE_INVALID_CONSTANT).
The head still carries the length the body would have had.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.harness import Process
from tests.integration.rawhttp import Answer, RawConnection

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Process]) -> Process:
    return start_gateway(WEB_CONCURRENCY="1")


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [(b"/nowhere/x", 404, "unknown_service"), (b"/nowhere/../x", 400, "bad_path")],
)
def test_an_error_answer_to_head_has_no_body_and_the_connection_carries_on(
    gateway: Process, target: bytes, status: int, code: str
) -> None:
    with RawConnection(gateway.port) as conn:
        conn.send(b"HEAD %s HTTP/1.1\r\nHost: gw\r\n\r\n" % target)
        head = conn.read(method="HEAD")
        assert isinstance(head, Answer), head
        assert head.status == status and int(head.headers["Content-Length"]) > 0, head
        assert head.headers.get("Connection") != "close", head.headers
        conn.send(b"GET %s HTTP/1.1\r\nHost: gw\r\n\r\n" % target)
        after = conn.read()  # a body left behind by the HEAD would be read as this answer
        assert isinstance(after, Answer), after
        assert (after.status, after.error_code()) == (status, code), after


@pytest.mark.parametrize(
    "refused",
    [
        b"HEAD /nowhere/x HTTP/1.1\r\nHost: gw\r\nX-Big: %s\r\n\r\n" % (b"a" * 70_000),
        b"HEAD /nowhere/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    ],
    ids=["431_headers_too_large", "501_transfer_coding"],
)
def test_a_refused_head_request_gets_a_head_and_then_the_close(
    gateway: Process, refused: bytes
) -> None:
    with RawConnection(gateway.port) as conn:
        conn.send(refused)
        head = conn.read(method="HEAD")
        assert isinstance(head, Answer) and head.status in (431, 501), head
        assert int(head.headers["Content-Length"]) > 0, head.headers
        assert conn.at_eof(), "bytes followed the head of an answer to HEAD"
