"""A client that leaves before its answer ends its request: nothing runs on for nobody.

The upstream attempt is cancelled and its connection closed, the request's in-flight slot is
freed at once, and the request is counted as a client abort and logged 499, as nginx does.
Without that, a few clients that send a request and close could hold every in-flight slot of
a service for as long as its instance takes (503 ``too_many_requests_in_flight`` for everyone).
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from registry.launcher import ConsulDouble
from tests.integration.harness import Process, wait_for
from tests.integration.hostile_upstream import HostileUpstream, hold
from tests.integration.rawhttp import Answer, RawConnection, Reply, request

pytestmark = pytest.mark.integration
SLOTS = 2  # GATEWAY_MAX_INFLIGHT


@pytest.fixture(scope="module")
def upstream(consul: ConsulDouble) -> Iterator[HostileUpstream]:
    with HostileUpstream(hold) as held:
        held.register(consul.addr, "held")
        yield held


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Process], upstream: HostileUpstream) -> Process:
    gw = start_gateway(
        WEB_CONCURRENCY="1",
        GATEWAY_MAX_INFLIGHT=str(SLOTS),
        GATEWAY_TRY_TIMEOUT="60s",  # the held requests would otherwise end by themselves
        GATEWAY_DEADLINE="60s",
        ACCESS_LOG="true",
    )
    wait_for(lambda: fast(gw).status == 200, 10, "a route to the held service")  # type: ignore[union-attr]
    return gw


def fast(gateway: Process) -> Reply:
    return request(gateway.port, b"GET /held/fast HTTP/1.1\r\nHost: gw\r\n\r\n")


def aborts(gateway: Process) -> float:
    text = requests.get(f"{gateway.admin_url}/_gateway/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_client_aborts_total" and sample.labels.get("service") == "held"
    )


def access_line(gateway: Process, request_id: str) -> dict[str, Any] | None:
    for line in gateway.log_path.read_text().splitlines():
        if request_id in line and line.startswith("{"):
            record: dict[str, Any] = json.loads(line)
            if record.get("request_id") == request_id and "status" in record:
                return record
    return None


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_that_leaves_frees_its_slot_closes_the_attempt_and_is_logged_499(
    gateway: Process, upstream: HostileUpstream, how: str
) -> None:
    before, closed = aborts(gateway), upstream.marked("closed by the gateway")
    ids = [f"{how}-{n}" for n in range(SLOTS)]
    for rid in ids:
        with RawConnection(gateway.port) as conn:
            conn.send(b"GET /held/%s HTTP/1.1\r\nHost: gw\r\nX-Request-ID: %s\r\n\r\n" % (
                rid.encode(), rid.encode()))  # fmt: skip
            wait_for(lambda rid=rid: upstream.count("GET", f"/{rid}"), 10, "the held request")
            if how == "reset":  # SO_LINGER 0: the close sends RST instead of FIN
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # The attempts end as their clients leave: their upstream connections close, and only
    # then (their slots were freed first) is the next client served.
    wait_for(
        lambda: upstream.marked("closed by the gateway") >= closed + SLOTS,
        10,
        "the gateway to close the departed requests' upstream connections",
    )
    reply = fast(gateway)
    assert isinstance(reply, Answer), reply
    assert (reply.status, reply.body) == (200, b"GET /fast"), (reply.status, reply.body[:300])
    wait_for(lambda: aborts(gateway) >= before + SLOTS, 10, "the departures counted as aborts")
    for rid in ids:
        line = wait_for(lambda rid=rid: access_line(gateway, rid), 10, f"the access line of {rid}")
        assert line["status"] == 499, line
