"""Upstreams that misbehave can never hand one client another client's answer, or hang it.

Each scenario is a :class:`HostileUpstream` under its own service name. Its answers name the
request they answer (``GET /first``), so an answer delivered to the wrong client shows. One
gateway worker, so every request meets the same upstream connection pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.harness import Process, wait_for
from tests.integration.hostile_upstream import (
    HostileUpstream,
    Script,
    close_on_reused,
    early_hints,
    surplus_after_body,
    surplus_while_idle,
    trickled_status,
    two_lengths,
    with_cl_and_te,
)
from tests.integration.rawhttp import Answer, Reply, request

pytestmark = pytest.mark.integration
SCRIPTS: dict[str, Script] = {
    "hints": early_hints,
    "surplus": surplus_after_body,
    "late": surplus_while_idle,
    "clte": with_cl_and_te,
    "lengths": two_lengths,
    "trickle": trickled_status,
    "replay": close_on_reused,
}


@pytest.fixture(scope="module")
def upstreams(consul: ConsulDouble) -> Iterator[dict[str, HostileUpstream]]:
    started: dict[str, HostileUpstream] = {}
    try:
        for name, script in SCRIPTS.items():
            started[name] = HostileUpstream(script)
            started[name].register(consul.addr, name)
        yield started
    finally:
        for upstream in started.values():
            upstream.close()


@pytest.fixture(scope="module")
def gateway(
    start_gateway: Callable[..., Process], upstreams: dict[str, HostileUpstream]
) -> Process:
    gw = start_gateway(
        WEB_CONCURRENCY="1",
        GATEWAY_TRY_TIMEOUT="2s",
        GATEWAY_DEADLINE="4s",
        GATEWAY_EJECT_AFTER="1000",  # every scenario fails on purpose; keep instances in
    )

    def routed() -> bool:
        body = requests.get(f"{gw.admin_url}/_gateway/routes", timeout=2).json()
        passing = {s["service"] for s in body["services"] if s["passing"]}
        return passing >= set(SCRIPTS)

    wait_for(routed, 10, "routes to every hostile upstream")
    return gw


def get(gateway: Process, path: str, method: str = "GET", timeout: float = 10.0) -> Reply:
    body = b"Content-Length: 4\r\n\r\nbody" if method == "POST" else b"\r\n"
    head = b"%s %s HTTP/1.1\r\nHost: gw\r\n" % (method.encode(), path.encode())
    return request(gateway.port, head + body, timeout)


def assert_own_answer(reply: Reply, expected: bytes) -> None:
    assert isinstance(reply, Answer), reply
    assert (reply.status, reply.body) == (200, expected)


def assert_json_error(reply: Reply, status: int, code: str) -> None:
    assert isinstance(reply, Answer), reply
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    assert reply.error_code() == code, reply.body[:300]


def test_early_hints_are_interim_and_the_next_client_gets_its_own_answer(
    gateway: Process,
) -> None:
    for n in range(2):
        assert_own_answer(get(gateway, f"/hints/first-{n}"), b"GET /first-%d" % n)
        assert_own_answer(get(gateway, f"/hints/second-{n}"), b"GET /second-%d" % n)


def test_surplus_bytes_after_a_body_never_reach_the_next_client(gateway: Process) -> None:
    for n in range(3):
        assert_own_answer(get(gateway, f"/surplus/request-{n}"), b"GET /request-%d" % n)


def test_surplus_bytes_sent_to_an_idle_connection_never_reach_the_next_client(
    gateway: Process, upstreams: dict[str, HostileUpstream]
) -> None:
    upstream = upstreams["late"]

    def ask(n: int) -> None:
        assert_own_answer(get(gateway, f"/late/request-{n}"), b"GET /request-%d" % n)
        wait_for(lambda: upstream.marked("surplus sent") > n, 5, "the surplus answer")

    for n in range(3):
        ask(n)


def test_content_length_with_transfer_encoding_from_upstream_is_a_502(gateway: Process) -> None:
    assert_json_error(get(gateway, "/clte/x"), 502, "upstream_bad_response")


def test_two_differing_content_lengths_from_upstream_are_a_502(gateway: Process) -> None:
    assert_json_error(get(gateway, "/lengths/x"), 502, "upstream_bad_response")


def test_a_trickled_status_line_is_cut_by_the_try_timeout_and_deadline(gateway: Process) -> None:
    # The whole status line would take about 40 s; the bounds are 2 s a try, 4 s in all.
    assert_json_error(get(gateway, "/trickle/x", timeout=20), 504, "upstream_timeout")


def test_post_read_by_an_upstream_that_then_closed_a_reused_connection_is_not_replayed(
    gateway: Process, upstreams: dict[str, HostileUpstream]
) -> None:
    upstream = upstreams["replay"]
    assert_own_answer(get(gateway, "/replay/warm"), b"GET /warm")  # pools one connection
    reply = get(gateway, "/replay/once", method="POST")
    assert upstream.count("POST", "/once") == 1
    assert isinstance(reply, Answer), reply
    assert 500 <= reply.status < 600, (reply.status, reply.body[:300])
    assert reply.error_code(), reply.body[:300]


def test_get_on_a_reused_connection_that_broke_is_resent_and_succeeds(
    gateway: Process, upstreams: dict[str, HostileUpstream]
) -> None:
    upstream = upstreams["replay"]
    assert_own_answer(get(gateway, "/replay/warm-again"), b"GET /warm-again")
    assert_own_answer(get(gateway, "/replay/again"), b"GET /again")
    assert upstream.count("GET", "/again") == 2
