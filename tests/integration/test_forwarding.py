"""Faithful forwarding through the gateway, checked against what the echo service received."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.conftest import StartService
from tests.integration.harness import Process, passing_ids, wait_for, wait_for_status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(
    start_service: StartService, start_gateway: Callable[..., Process], consul: ConsulDouble
) -> Process:
    start_service("echo")
    wait_for(lambda: passing_ids(consul.addr, "echo"), 15, "a passing echo instance")
    gw = start_gateway(GATEWAY_TRY_TIMEOUT="1s")
    wait_for(lambda: requests.get(f"{gw.url}/echo/health", timeout=2).ok, 10, "a route to echo")
    return gw


def test_method_path_query_and_headers_are_forwarded(gateway: Process) -> None:
    response = requests.request(
        "PATCH",
        f"{gateway.url}/echo/a/b%20c?x=1&y=%2F",
        headers={
            "X-Custom": "kept",
            "Connection": "X-Secret",
            "X-Secret": "dropped",
            "X-Forwarded-For": "198.51.100.7",
        },
        data=b"hello",
        timeout=5,
    )
    assert response.status_code == 200
    seen = response.json()
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert seen["method"] == "PATCH"
    assert seen["path"] == "/a/b c"
    assert seen["query"] == "x=1&y=%2F"
    assert headers["x-custom"] == "kept"
    assert "x-secret" not in headers
    assert headers["x-forwarded-for"] == "127.0.0.1"  # the edge believes no client's chain
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == gateway.url.removeprefix("http://")
    assert headers["x-forwarded-prefix"] == "/echo"
    assert seen["body_bytes"] == 5


def test_request_id_is_generated_propagated_and_returned(gateway: Process) -> None:
    generated = requests.get(f"{gateway.url}/echo/", timeout=5)
    rid = generated.headers["X-Request-ID"]
    assert len(rid) >= 16
    assert {k.lower(): v for k, v in generated.json()["headers"].items()}["x-request-id"] == rid
    kept = requests.get(f"{gateway.url}/echo/", headers={"X-Request-ID": "abc-123"}, timeout=5)
    assert kept.headers["X-Request-ID"] == "abc-123"
    assert {k.lower(): v for k, v in kept.json()["headers"].items()}["x-request-id"] == "abc-123"


def test_large_bodies_stream_through_intact(gateway: Process) -> None:
    payload = os.urandom(8 * 1024 * 1024)
    response = requests.post(f"{gateway.url}/echo/upload", data=payload, timeout=30)
    assert response.status_code == 200
    assert response.json()["body_bytes"] == len(payload)
    assert response.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_chunked_uploads_are_forwarded(gateway: Process) -> None:
    chunks = [os.urandom(100_000) for _ in range(5)]

    def body() -> Iterator[bytes]:
        yield from chunks

    response = requests.post(f"{gateway.url}/echo/chunked", data=body(), timeout=30)
    assert response.status_code == 200
    assert response.json()["body_sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_bad_content_length_is_a_400_json_error(gateway: Process) -> None:
    import socket

    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\nabc"
        )
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line = data.split(b"\r\n", 1)[0]
    assert b" 400 " in status_line, data[:300]


def test_unreachable_upstream_is_a_502_json_error(gateway: Process, consul: ConsulDouble) -> None:
    # An instance Consul believes in (its TTL check passes) but nothing listens on its port.
    registration = {
        "Name": "ghost",
        "ID": "ghost-1",
        "Address": "127.0.0.1",
        "Port": 9,
        "Check": {"TTL": "60s", "Status": "passing"},
    }
    requests.put(
        f"{consul.addr}/v1/agent/service/register", json=registration, timeout=5
    ).raise_for_status()
    response = wait_for_status(f"{gateway.url}/ghost/x", 502, 5, "a 502 for the ghost service")
    assert response.json()["error"] == "upstream_unreachable"


def test_slow_upstream_is_a_504_json_error(
    gateway: Process, start_service: StartService, consul: ConsulDouble
) -> None:
    slow = start_service("echo", SERVICE_NAME="slowpoke", FAULT_LATENCY="3s")
    wait_for(lambda: passing_ids(consul.addr, "slowpoke"), 15, "a passing slowpoke instance")
    response = wait_for_status(f"{gateway.url}/slowpoke/x", 504, 10, "a 504 from the slow instance")
    assert response.json()["error"] == "upstream_timeout"
    slow.stop()


def test_busy_keep_alive_connections_do_not_starve_others(
    start_gateway: Callable[..., Process], gateway: Process
) -> None:
    # Twelve clients on keep-alive connections against one worker with two threads: the
    # worker keeps a busy connection on its thread only while no other connection waits.
    small = start_gateway(WEB_CONCURRENCY="1", WEB_THREADS="2")
    wait_for(lambda: requests.get(f"{small.url}/echo/health", timeout=2).ok, 10, "a route to echo")
    results: list[int] = []

    def client() -> None:
        with requests.Session() as session:
            for _ in range(25):
                results.append(session.get(f"{small.url}/echo/x", timeout=10).status_code)

    threads = [threading.Thread(target=client) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [200] * 300
