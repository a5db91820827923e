"""An upstream answer the gateway cannot relay faithfully is a 502, never passed on altered.

A status code outside 100-599 means nothing (RFC 9110 §15); nginx answers 502 for it. A
transfer coding besides ``chunked`` (``gzip, chunked``) cannot be kept for every client and
would be lost if the chunked framing were simply redone, handing the client gzip bytes it was
not told about; nginx ("upstream sent unknown Transfer-Encoding") and Envoy ("unsupported
transfer encoding") refuse it, and so does the gateway.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.harness import Process, wait_for
from tests.integration.hostile_upstream import HostileUpstream, fixed
from tests.integration.rawhttp import Answer, request

pytestmark = pytest.mark.integration
ZIPPED = gzip.compress(b"the body, compressed")
ANSWERS = {
    "status099": b"HTTP/1.1 099 Too Low\r\nContent-Length: 2\r\n\r\nok",
    "status600": b"HTTP/1.1 600 Too High\r\nContent-Length: 2\r\n\r\nok",
    "status999": b"HTTP/1.1 999 Far Too High\r\nContent-Length: 2\r\n\r\nok",
    "gzipchunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    + b"%x\r\n%s\r\n0\r\n\r\n" % (len(ZIPPED), ZIPPED),
    "twocodings": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n%s\r\n0\r\n\r\n" % (len(ZIPPED), ZIPPED),
}


@pytest.fixture(scope="module")
def gateway(consul: ConsulDouble, start_gateway: Callable[..., Process]) -> Iterator[Process]:
    started = []
    try:
        for name, raw in ANSWERS.items():
            upstream = HostileUpstream(fixed(raw))
            started.append(upstream)
            upstream.register(consul.addr, name)
        gw = start_gateway(WEB_CONCURRENCY="1", GATEWAY_EJECT_AFTER="1000")

        def routed() -> bool:
            body = requests.get(f"{gw.admin_url}/_gateway/routes", timeout=2).json()
            return {s["service"] for s in body["services"] if s["passing"]} >= set(ANSWERS)

        wait_for(routed, 10, "routes to every upstream")
        yield gw
    finally:
        for upstream in started:
            upstream.close()


@pytest.mark.parametrize("service", ["status099", "status600", "status999"])
def test_a_status_code_outside_100_to_599_from_upstream_is_a_502(
    gateway: Process, service: str
) -> None:
    reply = request(gateway.port, b"GET /%s/x HTTP/1.1\r\nHost: gw\r\n\r\n" % service.encode())
    assert isinstance(reply, Answer), reply
    assert (reply.status, reply.error_code()) == (502, "upstream_bad_response"), reply.body


@pytest.mark.parametrize("service", ["gzipchunked", "twocodings"])
def test_a_transfer_coding_besides_chunked_from_upstream_is_a_502(
    gateway: Process, service: str
) -> None:
    for version in (b"1.1", b"1.0"):
        raw = b"GET /%s/x HTTP/%s\r\nHost: gw\r\n\r\n" % (service.encode(), version)
        reply = request(gateway.port, raw)
        assert isinstance(reply, Answer), reply
        assert (reply.status, reply.error_code()) == (502, "upstream_bad_response"), reply.body
