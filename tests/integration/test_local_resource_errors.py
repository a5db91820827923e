"""The gateway's own shortage of file descriptors is its own fault: 503, counted, logged.

With a low open-files limit and idle clients holding the descriptors, connecting to an
instance fails with EMFILE. That says nothing about the instance: the answer is a 503 naming
the gateway's shortage, a metric and an error line record it, and the instance is neither
ejected nor retried elsewhere (another instance would meet the same shortage).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from registry.launcher import ConsulDouble
from tests.integration.harness import Process, wait_for
from tests.integration.hostile_upstream import HostileUpstream, fixed
from tests.integration.rawhttp import Answer, RawConnection

pytestmark = pytest.mark.integration
OPEN_FILES = 64  # the gateway's limit: a worker needs a few dozen descriptors of its own
IDLE = 2 * OPEN_FILES  # idle clients: more than the worker can hold


@pytest.fixture(scope="module")
def upstream(consul: ConsulDouble) -> Iterator[HostileUpstream]:
    # It closes after each answer: every request needs a new descriptor, none is pooled.
    with HostileUpstream(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as files:
        files.register(consul.addr, "files")
        yield files


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Process], upstream: HostileUpstream) -> Process:
    gw = start_gateway(
        open_files=OPEN_FILES,
        WEB_CONCURRENCY="1",
        GATEWAY_HEADER_TIMEOUT="120s",  # the idle clients stay connected throughout
        GATEWAY_KEEPALIVE_TIMEOUT="120s",
        # Consul reads parked for the whole test: a finished one would free a descriptor.
        GATEWAY_WATCH_WAIT="600s",
    )
    # Routed, as the admin API says; no request goes to the instance before the test's own,
    # so no pooled connection to it can spare the gateway a new descriptor.
    wait_for(lambda: "files" in str(routes(gw)), 10, "a route to the instance")
    return gw


def routes(gateway: Process) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{gateway.admin_url}/_gateway/routes", timeout=5).json()
    return body


def local_errors(gateway: Process) -> float:
    text = requests.get(f"{gateway.admin_url}/_gateway/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_local_resource_errors_total"
        and sample.labels.get("reason") == "EMFILE"
    )


def test_running_out_of_descriptors_is_a_503_that_blames_no_instance(gateway: Process) -> None:
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(RawConnection(gateway.port))
        idle = [stack.enter_context(RawConnection(gateway.port)) for _ in range(IDLE)]
        # The worker accepts connections until it has no descriptor left; libuv then accepts
        # and closes the rest at once. The last one closed: the worker is out of descriptors.
        wait_for(lambda: idle[-1].at_eof(0.1), 10, "the worker to run out of descriptors")
        replies = []
        for n in range(3):
            client.send(b"GET /files/x-%d HTTP/1.1\r\nHost: gw\r\n\r\n" % n)
            replies.append(client.read())
    codes = [(r.status, r.error_code()) if isinstance(r, Answer) else r for r in replies]
    assert codes == [(503, "gateway_out_of_resources")] * 3, codes
    # Descriptors are free again once the worker has seen the clients leave (until then the
    # admin listener cannot accept either): the instance was never taken out.
    found = wait_for(lambda: routes(gateway)["services"], 10, "the admin API to answer again")
    (instance,) = [i for s in found if s["service"] == "files" for i in s["instances"]]
    assert instance["ejected"] is False, instance
    assert local_errors(gateway) >= 3
    assert "out of a local resource: no connection tried: EMFILE" in gateway.log_path.read_text()
