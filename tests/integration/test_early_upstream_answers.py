"""An instance that answers before it has read an upload gets its answer to the client.

An instance may refuse a large upload at once (a 413, or Flask's 405) without reading it. The
gateway relays that answer and stops sending the body, as nginx and Envoy do, instead of
waiting to send more until the try timeout (a 504 that would also count against a healthy
instance). The instance's connection is then closed, not reused, and the client connection is
closed after the client's upload is read and dropped, so the answer is not lost to a reset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.harness import Process, wait_for
from tests.integration.hostile_upstream import HostileUpstream, answer_before_the_body
from tests.integration.rawhttp import Answer, upload

pytestmark = pytest.mark.integration
PIECE = b"u" * 65536
PIECES = 768  # 48 MiB: streamed (past GATEWAY_BUFFER_BODY), within GATEWAY_MAX_BODY_SIZE


@pytest.fixture(scope="module")
def upstream(consul: ConsulDouble) -> Iterator[HostileUpstream]:
    with HostileUpstream(answer_before_the_body, reads=False) as early:
        early.register(consul.addr, "early")
        yield early


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Process], upstream: HostileUpstream) -> Process:
    gw = start_gateway(WEB_CONCURRENCY="1", GATEWAY_TRY_TIMEOUT="3s")

    def routed() -> bool:
        body = requests.get(f"{gw.admin_url}/_gateway/routes", timeout=2).json()
        return any(s["service"] == "early" and s["passing"] for s in body["services"])

    wait_for(routed, 10, "a route to the early-answering instance")
    return gw


def instance(gateway: Process) -> dict[str, Any]:
    body = requests.get(f"{gateway.admin_url}/_gateway/routes", timeout=5).json()
    found: list[dict[str, Any]] = [
        i for s in body["services"] if s["service"] == "early" for i in s["instances"]
    ]
    assert len(found) == 1, body
    return found[0]


def test_an_early_answer_to_a_streamed_upload_is_relayed_and_the_body_stops(
    gateway: Process, upstream: HostileUpstream
) -> None:
    head = b"POST /early/items HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n" % (
        len(PIECE) * PIECES
    )
    for n in range(3):  # three 504s in a row would have ejected the instance
        upstream.release.clear()
        reply = upload(gateway.port, head, PIECE, PIECES)
        # The instance reads nothing until its answer was relayed: no drained buffer can
        # unblock a gateway that waits to send more.
        upstream.release.set()
        assert isinstance(reply, Answer), reply
        assert (reply.status, reply.body) == (413, b"the instance's own 413"), reply
        assert reply.headers.get("Connection") == "close", reply.headers
        # Not reused: the instance never read the body, so its connection ends with this answer.
        wait_for(
            lambda n=n: upstream.marked("closed by the gateway") > n,
            10,
            "the gateway to close the instance's connection",
        )
    assert upstream.marked("answered early") == 3
    assert instance(gateway)["ejected"] is False


def test_an_early_answer_is_relayed_when_the_instance_then_closes_under_the_upload(
    gateway: Process, upstream: HostileUpstream
) -> None:
    # As gunicorn does after Flask's 405 to a large POST: the answer, then a close with the
    # body unread. The connection's end must not swallow the answer that came before it.
    head = b"POST /early/close HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n" % (
        len(PIECE) * PIECES
    )
    reply = upload(gateway.port, head, PIECE, PIECES)
    assert isinstance(reply, Answer), reply
    assert (reply.status, reply.body) == (413, b"the instance's own 413"), reply
