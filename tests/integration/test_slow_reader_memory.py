"""Clients that stop reading a large answer hold a bounded, small amount of gateway memory.

The relay reads from the instance only as fast as the client takes the answer, and holds at
most a few tens of KB per connection while it waits (as nginx's proxy buffers do); the rest
stays in the kernel's socket buffers and, past those, at the instance. Fifty clients that do
not read a 64 MiB answer are measured by the growth of the worker's resident memory.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from registry.launcher import ConsulDouble
from tests.integration.harness import Process, wait_for
from tests.integration.hostile_upstream import HostileUpstream, large_answer

pytestmark = pytest.mark.integration
CLIENTS = 50
# Generous: the relay holds well under 100 KiB per client, and before the bound it held about
# 1 MiB. The margin absorbs the allocator's and the interpreter's own growth.
MAX_GROWTH_PER_CLIENT = 320 * 1024


@pytest.fixture(scope="module")
def upstream(consul: ConsulDouble) -> Iterator[HostileUpstream]:
    with HostileUpstream(large_answer) as large:
        large.register(consul.addr, "large")
        yield large


@pytest.fixture(scope="module")
def gateway(start_gateway: Callable[..., Process], upstream: HostileUpstream) -> Process:
    gw = start_gateway(WEB_CONCURRENCY="1", GATEWAY_TRY_TIMEOUT="60s")

    def routed() -> bool:
        body = requests.get(f"{gw.admin_url}/_gateway/routes", timeout=2).json()
        return any(s["service"] == "large" and s["passing"] for s in body["services"])

    wait_for(routed, 10, "a route to the large answers")
    return gw


def rss(pid: int) -> int:
    """Resident memory of *pid* in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def stalled_clients(stack: contextlib.ExitStack, port: int, count: int) -> None:
    """*count* clients that ask for the large answer and never read it."""
    for n in range(count):
        sock = stack.enter_context(socket.socket())
        # A small window, so the kernel buffers between gateway and client fill up soon.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /large/%d HTTP/1.1\r\nHost: gw\r\n\r\n" % n)


def test_clients_that_do_not_read_a_large_answer_hold_little_gateway_memory(
    gateway: Process, upstream: HostileUpstream
) -> None:
    (worker,) = gateway.worker_pids()
    with contextlib.ExitStack() as stack:
        # One stalled client first, so that every code path and buffer size was met once.
        stalled_clients(stack, gateway.port, 1)
        wait_for(lambda: upstream.marked("stalled") >= 1, 30, "the first client to stall")
        before = rss(worker)
        stalled_clients(stack, gateway.port, CLIENTS)
        # Each instance write blocks once the gateway holds what it will hold for that client.
        wait_for(
            lambda: upstream.marked("stalled") >= 1 + CLIENTS, 60, "every client's answer to stall"
        )
        growth = rss(worker) - before
    assert growth < CLIENTS * MAX_GROWTH_PER_CLIENT, (
        f"{growth / CLIENTS / 1024:.0f} KiB per client not reading its answer"
    )
