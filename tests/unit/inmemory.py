"""The gateway's front end and proxy wired to in-memory transports: no sockets, real parsing.

A client's bytes go into :class:`gateway.front.ClientConnection`; the proxy's pool gets a
connector (:class:`gateway.pool.Connector`) whose upstream connections have a transport that
hands what the gateway writes to a scripted instance, whose reply is fed back through llhttp.
This is the seam httpx's mock transports give: retries, ejection and relaying are tested
without a network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httptools

from discovery.model import Instance, Service
from gateway.front import ClientConnection, FrontServer
from gateway.pool import Key, Pool
from gateway.proxy import Listener, Proxy
from gateway.settings import GatewaySettings
from gateway.upstream import UpstreamConnection

PEER = ("203.0.113.9", 40000)


class FakeTransport(asyncio.Transport):
    """Records writes; closing tells the protocol the connection is lost, as asyncio does."""

    def __init__(self, protocol: Any, on_write: Callable[[bytes], None] | None = None) -> None:
        super().__init__()
        self.protocol = protocol
        self.on_write = on_write
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.written += data
        if self.on_write is not None:
            self.on_write(bytes(data))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # writes never wait here

    def get_write_buffer_size(self) -> int:
        return 0  # every write is handed over at once

    def can_write_eof(self) -> bool:
        return False  # the front end then closes at once instead of lingering

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return PEER if name == "peername" else default


# A scripted instance: given the bytes of one request, the bytes to answer (None: say nothing).
Script = Callable[[bytes], bytes | None]


@dataclass
class Upstreams:
    """Scripted instances by port; every request they received, and which were refused."""

    scripts: dict[int, Script]
    refused: set[int] = field(default_factory=set)
    close_after: set[int] = field(default_factory=set)  # ports that close after answering
    received: list[tuple[int, bytes]] = field(default_factory=list)
    connections: int = 0


class ScriptedConnector:
    """A connector (:class:`gateway.pool.Connector`) whose connections talk to
    :class:`Upstreams` instead of the network."""

    def __init__(self, upstreams: Upstreams) -> None:
        self.upstreams = upstreams

    async def __call__(
        self, factory: Callable[[], UpstreamConnection], key: Key
    ) -> UpstreamConnection:
        port = key[1]
        if port in self.upstreams.refused:
            raise ConnectionRefusedError(111, "Connection refused")
        conn = factory()
        self.upstreams.connections += 1
        loop = asyncio.get_running_loop()

        def deliver(data: bytes) -> None:
            self.upstreams.received.append((port, data))
            reply = self.upstreams.scripts[port](data)
            if reply is not None:
                loop.call_soon(conn.data_received, reply)
            if port in self.upstreams.close_after:
                loop.call_soon(transport.close)

        transport = FakeTransport(conn, deliver)
        conn.connection_made(transport)
        return conn


class FakeWatcher:
    """A catalog (:class:`gateway.proxy.Catalog`) that never changes."""

    def __init__(self, services: Mapping[str, Service]) -> None:
        self.services = services
        self.has_data = True
        self.last_success: float | None = None

    def add_listener(self, listener: Listener) -> None:
        pass

    def status(self) -> dict[str, object]:
        return {"services": len(self.services), "from_snapshot_file": False}


def service(name: str, *ports: int) -> Service:
    """A service with one passing instance per port on 127.0.0.1."""
    return Service.of(
        name,
        [Instance(f"{name}-{p}", name, "127.0.0.1", p, "passing") for p in ports],
    )


def build(
    upstreams: Upstreams, services: list[Service], **settings: Any
) -> tuple[Proxy, FrontServer]:
    """A proxy over scripted upstreams, and a front server in front of it."""
    config = GatewaySettings(**settings)
    watcher = FakeWatcher({s.name: s for s in services})
    pool = Pool(connect_timeout=1.0, connector=ScriptedConnector(upstreams))
    proxy = Proxy(config, watcher, pool=pool)
    return proxy, FrontServer(config, proxy.handle)


async def exchange(front: FrontServer, raw: bytes, settle: float = 2.0) -> FakeTransport:
    """Send *raw* on a new client connection; return its transport once the gateway is idle."""
    conn: ClientConnection = front.protocol()
    transport = FakeTransport(conn)
    conn.connection_made(transport)
    conn.data_received(raw)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    while loop.time() < deadline:
        await asyncio.sleep(0.001)
        if transport.closed or (conn.current is None and not conn.queue and transport.written):
            break
    return transport


@dataclass
class Reply:
    """One parsed answer of the gateway."""

    status: int
    headers: dict[str, str]
    body: bytes


def replies(data: bytes, whole: bool = False) -> list[Reply]:
    """Every answer in *data*, parsed by llhttp; with *whole*, fail if one is cut short."""
    found: list[Reply] = []
    begun = 0

    class Sink:
        def on_message_begin(self) -> None:
            nonlocal begun
            begun += 1
            self.headers: dict[str, str] = {}
            self.body = b""

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers[name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            found.append(Reply(parser.get_status_code(), self.headers, self.body))

    parser = httptools.HttpResponseParser(Sink())
    parser.feed_data(bytes(data))
    assert not whole or begun == len(found), f"an answer was cut short: {bytes(data)!r}"
    return found


def answer(body: bytes = b"ok", status: str = "200 OK", *extra: bytes) -> bytes:
    """A well-formed upstream answer."""
    head = [b"HTTP/1.1 " + status.encode(), b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def exchanges(front: FrontServer, *raws: bytes) -> list[bytes]:
    """Send each of *raws* on its own connection, one after the other, on one event loop."""

    async def all_of() -> list[bytes]:
        return [bytes((await exchange(front, raw)).written) for raw in raws]

    return asyncio.run(all_of())


def run(coro: Any) -> Any:
    """Run one test coroutine on a fresh event loop."""
    return asyncio.run(coro)
