"""The socket-level loads of `make bench`: slow clients with probes, and idle keep-alives.

Both run on one asyncio loop in the bench process, against 127.0.0.1 only, and both are
bounded in count and in time: every connect, read and probe has a timeout, and every task is
cancelled and every socket closed before the coroutine returns.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from scripts.benchlib import SlowResult, head_status

HOST = "127.0.0.1"
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
T = TypeVar("T")


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one whole response (Content-Length, chunked, or to EOF); return its status."""
    status, headers = head_status(await reader.readuntil(b"\r\n\r\n"))
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await _skip_trailers(reader)
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif status >= 200 and status not in (204, 304):
        await reader.read()
    return status


async def _skip_trailers(reader: asyncio.StreamReader) -> None:
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass


def get(path: str, port: int, close: bool) -> bytes:
    """A plain GET request, keep-alive or ``Connection: close``."""
    connection = "close" if close else "keep-alive"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: {connection}\r\n\r\n".encode()
    )


def slow_bytes(port: int) -> Iterator[bytes]:
    """A request's header bytes, one at a time, never reaching the blank line that ends them."""
    yield from (bytes([b]) for b in f"Host: {HOST}:{port}\r\nX-Slow: ".encode())
    while True:
        yield b"a"


@dataclass
class _SlowStats:
    open: int = 0
    peak: int = 0
    connects: int = 0
    answers: Counter[str] = field(default_factory=Counter)


async def _slow_client(port: int, path: str, until: float, stats: _SlowStats) -> None:
    """Send a request line, then a header byte a second; on an answer or close, start over."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
        except (OSError, TimeoutError):
            stats.answers["connect failed"] += 1
            await asyncio.sleep(1)
            continue
        stats.connects += 1
        connected = time.monotonic()
        stats.open += 1
        stats.peak = max(stats.peak, stats.open)
        answer = asyncio.ensure_future(reader.read(1024))
        try:
            writer.write(f"GET {path} HTTP/1.1\r\n".encode())
            for byte in slow_bytes(port):
                done, _ = await asyncio.wait({answer}, timeout=min(1.0, until - time.monotonic()))
                if done or time.monotonic() >= until:
                    break
                writer.write(byte)
                await writer.drain()
            if answer.done():
                data = answer.result()
                stats.answers[data[9:12].decode("latin-1") if data else "closed"] += 1
        except OSError:
            stats.answers["reset"] += 1
        finally:
            answer.cancel()
            stats.open -= 1
            writer.close()
        if time.monotonic() - connected < 1:  # refused at once: pace the retries, never spin
            await asyncio.sleep(1)


async def _probe(port: int, path: str, timeout: float) -> float | None:
    """One GET on a new connection; its latency in ms if it was answered 2xx within *timeout*."""
    start = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(get(path, port, close=True))
            status = await read_response(reader)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        return None
    finally:
        if writer is not None:
            writer.close()
    return (time.perf_counter() - start) * 1e3 if 200 <= status < 300 else None


async def slow_clients(
    port: int, path: str, clients: int, probes: int, spacing: float, timeout: float
) -> SlowResult:
    """Hold *clients* slow connections; meanwhile send *probes* GETs, *spacing* s apart.

    The slow clients are opened over about a second and given at most 5 s to connect, then the
    probes start; the slow clients stop when the last probe has had its *timeout*.
    """
    stats = _SlowStats()
    until = time.monotonic() + 6 + probes * spacing + timeout
    slow: list[asyncio.Task[None]] = []
    try:
        for _ in range(clients):
            slow.append(asyncio.create_task(_slow_client(port, path, until, stats)))
            await asyncio.sleep(1 / clients)
        ramp_end = time.monotonic() + 5
        while stats.open < clients and time.monotonic() < ramp_end:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # every slow client has sent its first header bytes
        start = time.monotonic()
        sent: list[asyncio.Task[float | None]] = []
        for i in range(probes):
            sent.append(asyncio.create_task(_probe(port, path, timeout)))
            await asyncio.sleep(max(0.0, start + (i + 1) * spacing - time.monotonic()))
        latencies = await asyncio.gather(*sent)
    finally:
        await _cancel(slow)
    return SlowResult(
        sent=probes,
        latencies_ms=tuple(ms for ms in latencies if ms is not None),
        slow_peak=stats.peak,
        slow_connects=stats.connects,
        slow_answers=dict(stats.answers),
    )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _idle_connection(port: int, path: str, timeout: float) -> Conn | None:
    """A keep-alive connection that has had one 2xx answer, or None."""
    conn = None
    try:
        async with asyncio.timeout(timeout):
            conn = await asyncio.open_connection(HOST, port)
            conn[1].write(get(path, port, close=False))
            if 200 <= await read_response(conn[0]) < 300:
                return conn
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        pass
    if conn is not None:
        conn[1].close()
    return None


async def with_idle_connections(
    port: int,
    path: str,
    count: int,
    run: Callable[[], Awaitable[T]],
    open_within: float = 30.0,
) -> tuple[T, int, int]:
    """Open up to *count* idle keep-alive connections, await *run*, then close them all.

    Returns what *run* returned, how many connections were opened (each had a 2xx answer) and
    how many of those were still open when *run* finished. At most 100 connect at once, each
    within 5 s, all within *open_within* s.
    """
    gate = asyncio.Semaphore(100)
    deadline = time.monotonic() + open_within

    async def one() -> Conn | None:
        async with gate:
            left = deadline - time.monotonic()
            return await _idle_connection(port, path, min(5.0, left)) if left > 0 else None

    conns = [c for c in await asyncio.gather(*(one() for _ in range(count))) if c is not None]
    try:
        value = await run()
        still_open = sum(not w.transport.is_closing() and not r.at_eof() for r, w in conns)
    finally:
        for _, writer in conns:
            writer.close()
        await asyncio.sleep(0)  # let the loop send the FINs before it is closed
    return value, len(conns), still_open
