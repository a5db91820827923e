"""Faults on the client side never count against an upstream, and slow clients stop no one.

Short bodies and aborted uploads must leave no request in flight and eject no instance; they
are counted as client aborts. Slow uploads and slow headers must not take the gateway's or
echo's capacity from ordinary requests. Header hygiene is checked against what echo saw.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from discovery.settings import instance_id
from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for
from tests.integration.rawhttp import Answer, NoAnswer, RawConnection, Reply, request

pytestmark = pytest.mark.integration
TE = b"Transfer-Encoding: chunked\r\n\r\n"
BIG_CHUNK = 1_100_000  # past GATEWAY_BUFFER_BODY's default (1 MiB): this body is streamed


@pytest.fixture(scope="module")
def echo(start_service: StartService, consul: ConsulDouble) -> str:
    proc = start_service("echo")
    wait_for(lambda: passing_ids(consul.addr, "echo"), 15, "a passing echo instance")
    return instance_id("echo", proc.port)


def _routed(start_gateway: Callable[..., Process], **env: str) -> Process:
    gw = start_gateway(**env)
    wait_for(lambda: requests.get(f"{gw.url}/echo/", timeout=2).ok, 10, "a route to echo")
    return gw


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Process], echo: str) -> Process:
    # One worker, so /_gateway/routes shows the worker that served; a header timeout longer
    # than the slow-header test, so its clients stay connected throughout.
    return _routed(start_gateway, WEB_CONCURRENCY="1", GATEWAY_HEADER_TIMEOUT="60s")


@pytest.fixture(scope="module")
def strict(start_gateway: Callable[..., Process], echo: str) -> Process:
    return _routed(
        start_gateway,
        GATEWAY_BODY_TIMEOUT="3s",
        GATEWAY_HEADER_TIMEOUT="2s",
        GATEWAY_MAX_BODY_SIZE="1000",
    )


def instance_state(gateway: Process, ident: str) -> dict[str, Any]:
    body = requests.get(f"{gateway.admin_url}/_gateway/routes", timeout=5).json()
    found = [i for s in body["services"] for i in s["instances"] if i["id"] == ident]
    assert found, body
    state: dict[str, Any] = found[0]
    return state


def aborts(gateway: Process) -> float:
    text = requests.get(f"{gateway.admin_url}/_gateway/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_client_aborts_total" and sample.labels.get("service") == "echo"
    )


def assert_settled_and_not_ejected(gateway: Process, echo: str) -> None:
    """Call once the aborts are counted, so every aborted request has been handled."""
    wait_for(lambda: instance_state(gateway, echo)["outstanding"] == 0, 10, "no request in flight")
    assert instance_state(gateway, echo)["ejected"] is False


def echo_saw(gateway: Process, head: bytes) -> dict[str, str]:
    """The headers echo received for a GET with *head* lines; lower-cased names."""
    reply = request(gateway.port, b"GET /echo/h HTTP/1.1\r\n" + head + b"\r\n")
    assert isinstance(reply, Answer) and reply.status == 200, reply
    return {k.lower(): v for k, v in reply.json()["headers"].items()}


@pytest.mark.parametrize("declared", [100_000, 2_000_000], ids=["buffered", "streamed"])
def test_short_body_leaves_nothing_in_flight_ejects_nothing_and_is_counted(
    gateway: Process, echo: str, declared: int
) -> None:
    before = aborts(gateway)
    head = b"POST /echo/short HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n" % declared
    for half_close in (True, False, True):
        with RawConnection(gateway.port) as conn:
            conn.send(head + b"x" * 10)
            if not half_close:
                continue
            conn.shutdown_write()
            reply = conn.read()
        if isinstance(reply, Answer):
            assert 400 <= reply.status < 500 and reply.error_code(), (reply.status, reply.body)
        else:
            assert reply.reason == "closed", reply
    wait_for(lambda: aborts(gateway) >= before + 3, 10, "3 more client aborts counted")
    assert_settled_and_not_ejected(gateway, echo)


def test_aborted_chunked_uploads_eject_nothing_and_are_counted(gateway: Process, echo: str) -> None:
    before = aborts(gateway)
    head = b"POST /echo/up HTTP/1.1\r\nHost: gw\r\n" + TE
    for size in (5, BIG_CHUNK) * 3:
        with RawConnection(gateway.port) as conn:
            conn.send(head + b"%x\r\n" % (size + 1) + b"y" * size)  # one byte short, then gone
    wait_for(lambda: aborts(gateway) >= before + 6, 10, "6 more client aborts counted")
    assert_settled_and_not_ejected(gateway, echo)
    reply = request(gateway.port, b"GET /echo/after HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert isinstance(reply, Answer) and reply.status == 200, reply


def test_an_upload_the_client_stalls_is_not_counted_as_the_instances_latency(
    start_gateway: Callable[..., Process], echo: str
) -> None:
    # Every body streamed, so the attempt to echo is under way while the client stalls.
    gw = _routed(
        start_gateway, WEB_CONCURRENCY="1", GATEWAY_BUFFER_BODY="0", GATEWAY_BODY_TIMEOUT="1s"
    )
    before = instance_state(gw, echo)["latency_ewma_ms"]
    with RawConnection(gw.port) as conn:
        conn.send(
            b"POST /echo/stall HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
        )
        wait_for(lambda: instance_state(gw, echo)["outstanding"] == 1, 5, "the attempt to echo")
        assert_timed_out(conn.read(timeout=10))  # the client's stall, ended by its body timeout
    wait_for(lambda: instance_state(gw, echo)["outstanding"] == 0, 10, "the attempt to end")
    # Nothing about echo was measured: the wait was the client's (it had been a second).
    assert instance_state(gw, echo)["latency_ewma_ms"] == before


def test_http11_request_without_host_is_a_400(gateway: Process) -> None:
    reply = request(gateway.port, b"GET /echo/nohost HTTP/1.1\r\n\r\n")
    assert isinstance(reply, Answer), reply
    assert (reply.status, reply.error_code()) == (400, "bad_request"), reply.body[:300]
    old = request(gateway.port, b"GET /echo/nohost HTTP/1.0\r\n\r\n")  # Host is 1.1's rule
    assert isinstance(old, Answer) and old.status == 200, old


def test_host_is_sent_upstream_even_when_connection_names_it(gateway: Process) -> None:
    seen = echo_saw(gateway, b"Host: gw.example\r\nConnection: keep-alive, Host\r\n")
    assert "host" in seen, seen


def test_spoofable_forwarding_headers_from_clients_are_dropped(gateway: Process) -> None:
    spoofed = {
        b"Forwarded": b"for=198.51.100.7;proto=https",
        b"X-Real-IP": b"198.51.100.7",
        b"X-Forwarded-Ssl": b"on",
        b"X-Forwarded-Protocol": b"https",
    }
    lines = b"".join(b"%s: %s\r\n" % item for item in spoofed.items())
    seen = echo_saw(gateway, b"Host: gw\r\n" + lines)
    assert not {name.decode().lower() for name in spoofed} & set(seen), seen


def test_slow_header_clients_do_not_stop_ordinary_requests(gateway: Process) -> None:
    stop, rounds, failed_sends = threading.Event(), [0], [0]
    with ExitStack() as stack:
        conns = [stack.enter_context(RawConnection(gateway.port)) for _ in range(16)]

        def trickle() -> None:
            header = b"X-Slow: " + b"s" * 100
            for at in range(100):
                data = header[at : at + 1] if at else b"GET /echo/slow HTTP/1.1\r\n"
                failed_sends[0] += sum(not conn.send(data) for conn in conns)
                rounds[0] += 1
                if stop.wait(1.0):  # pacing: one header byte a second
                    return

        thread = threading.Thread(target=trickle, daemon=True)
        stack.callback(thread.join, 5)
        stack.callback(stop.set)
        thread.start()
        wait_for(lambda: rounds[0] >= 2, 10, "the slow clients to start their headers")
        for n in range(20):
            try:
                status = requests.get(f"{gateway.url}/echo/ordinary-{n}", timeout=5).status_code
            except requests.RequestException as exc:
                pytest.fail(f"ordinary request {n} failed while slow clients held on: {exc}")
            assert status == 200, (n, status)
        assert failed_sends[0] == 0, "slow clients were dropped within their header timeout"


def test_headers_trickled_past_the_header_timeout_get_408_or_a_close(strict: Process) -> None:
    stop = threading.Event()
    with RawConnection(strict.port) as conn:
        conn.send(b"GET /echo/slow HTTP/1.1\r\nHost: gw\r\n")

        def trickle() -> None:
            while conn.send(b"x") and not stop.wait(1.0):  # pacing: a byte a second
                pass

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            reply = conn.read(timeout=15)
        finally:
            stop.set()
            thread.join(5)
    assert_timed_out(reply)


def assert_timed_out(reply: Reply) -> None:
    if isinstance(reply, NoAnswer):
        assert reply.reason == "closed", reply
    else:
        assert reply.status == 408, (reply.status, reply.body[:300])


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 1200\r\n\r\n" + b"z" * 1200, TE + (b"258\r\n" + b"z" * 600 + b"\r\n") * 2],
    ids=["declared", "chunked"],
)
def test_body_over_the_maximum_size_is_a_413(strict: Process, framing: bytes) -> None:
    reply = request(strict.port, b"POST /echo/big HTTP/1.1\r\nHost: gw\r\n" + framing)
    assert isinstance(reply, Answer), reply
    assert (reply.status, reply.error_code()) == (413, "body_too_large"), reply.body[:300]


def test_slow_chunked_uploads_neither_starve_echo_nor_outlive_the_body_timeout(
    strict: Process,
) -> None:
    stop, started = threading.Event(), []

    def slow_upload() -> Reply:
        with RawConnection(strict.port) as conn:
            conn.send(b"POST /echo/slow HTTP/1.1\r\nHost: gw\r\n" + TE)
            started.append(1)
            for byte in b"1\r\na\r\n" * 20:  # one byte every 2 s, within the body timeout...
                if not conn.send(bytes([byte])) or stop.wait(2.0):
                    break
            return conn.read(timeout=15)  # ...then silence, which the body timeout must end

    ok = failed = 0
    with ThreadPoolExecutor(8) as pool:
        uploads = [pool.submit(slow_upload) for _ in range(8)]
        try:
            wait_for(lambda: len(started) == 8, 10, "8 slow uploads to start")
            for n in range(20):
                if failed > 1:
                    break
                stop.wait(0.5)  # pacing: 20 ordinary requests spread over about 10 s
                try:
                    status = requests.get(f"{strict.url}/echo/get-{n}", timeout=5).status_code
                except requests.RequestException:
                    status = 0
                ok, failed = ok + (status == 200), failed + (status != 200)
        finally:
            stop.set()
        replies = [upload.result(timeout=30) for upload in uploads]
    assert ok >= 19, f"{ok} of {ok + failed} ordinary requests (of 20) succeeded; 19 must"
    for reply in replies:
        assert_timed_out(reply)
