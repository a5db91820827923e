"""Noticing that the client of a parked blocking query has gone, as Go's HTTP server does.

Consul's HTTP server cancels a request's context when its client's connection closes, and a
blocking query on that context stops at once (Go's ``net/http`` reads ahead on the connection
in the background for that). The registry's handler threads cannot both wait on the store and
read their socket, so one ``DisconnectWatcher`` thread watches the sockets of every parked query
with a selector: end of stream or a reset sets the request's ``Cancel``, which wakes the query,
and the handler closes the connection without an answer. Like Go, a half-close (the client shut
its sending side) counts as gone. A client that pipelines its next request is left alone: bytes
that arrive mean nothing can be told about the connection until they are read.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

#: ``arm(on_gone)`` starts watching a request's connection and returns the call that stops it.
Arm = Callable[[Callable[[], None]], Callable[[], None]]


class Cancel:
    """Set once a request's client has gone; a blocking query stops waiting on it."""

    def __init__(self, arm: Arm | None = None) -> None:
        self._arm = arm
        self._gone = threading.Event()

    def is_set(self) -> bool:
        """True once the client is known to be gone."""
        return self._gone.is_set()

    @contextmanager
    def armed(self, wake: Callable[[], None]) -> Iterator[None]:
        """Watch the connection while the body runs; ``wake`` is called if the client goes."""
        if self._arm is None:
            yield
            return

        def gone() -> None:
            self._gone.set()
            wake()

        disarm = self._arm(gone)
        try:
            yield
        finally:
            disarm()


class DisconnectWatcher:
    """One daemon thread that reports watched sockets whose peer closed or reset them."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._callbacks: dict[int, tuple[socket.socket, Callable[[], None]]] = {}
        # A registration made while the selector waits must interrupt the wait with some
        # selectors (poll, select); one byte on this pair does it.
        self._wake_recv, self._wake_send = socket.socketpair()
        self._wake_recv.setblocking(False)
        self._wake_send.setblocking(False)
        self._selector.register(self._wake_recv, selectors.EVENT_READ)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="disconnect-watcher", daemon=True)
        self._thread.start()

    def watch(self, sock: socket.socket, on_gone: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_gone`` (once, from the watcher's thread) if the peer leaves; return the
        call that stops watching."""
        fd = sock.fileno()
        with self._lock:
            if self._closed:
                return _nothing
            self._callbacks[fd] = (sock, on_gone)
            self._selector.register(fd, selectors.EVENT_READ)
        self._interrupt()
        return lambda: self._forget(fd, sock)

    def watching(self) -> int:
        """How many sockets are watched now."""
        with self._lock:
            return len(self._callbacks)

    def close(self) -> None:
        """Stop the thread; nothing more is reported."""
        with self._lock:
            self._closed = True
            self._callbacks.clear()
        self._interrupt()
        self._thread.join(timeout=5)

    def _forget(self, fd: int, sock: socket.socket) -> None:
        with self._lock:
            entry = self._callbacks.get(fd)
            if entry is not None and entry[0] is sock:
                del self._callbacks[fd]
                self._selector.unregister(fd)

    def _interrupt(self) -> None:
        # Failing means the buffer is full (a wake-up is pending anyway) or the pair is closing.
        with contextlib.suppress(OSError):
            self._wake_send.send(b"\0")

    def _run(self) -> None:
        while True:
            events = self._selector.select()
            with self._lock:
                if self._closed:
                    break
            for key, _ in events:
                if key.fileobj is self._wake_recv:
                    self._drain_wakeups()
                else:
                    self._check(int(key.fd))
        self._selector.close()
        self._wake_recv.close()
        self._wake_send.close()

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_recv.recv(4096):
                pass

    def _check(self, fd: int) -> None:
        with self._lock:
            entry = self._callbacks.get(fd)
            if entry is None:
                return
            on_gone = entry[1]
            try:
                peeked = _peek(fd)
            except (BlockingIOError, InterruptedError):
                return  # a spurious wake-up
            except OSError:
                peeked = b""  # reset or otherwise broken: gone as well
            # Either way the socket is done with: gone, or bytes are waiting to be read.
            del self._callbacks[fd]
            self._selector.unregister(fd)
        if not peeked:
            log.debug("client on fd %d left; its blocking query is cancelled", fd)
            on_gone()


def _peek(fd: int) -> bytes:
    # The handler's socket object has a timeout, with which Python waits for data before a
    # recv; a second object on the same descriptor, without one, only looks (MSG_DONTWAIT, so
    # the descriptor's own flags stay as they are). detach() leaves it open for its owner.
    view = socket.socket(fileno=fd)
    try:
        return view.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    finally:
        view.detach()


def _nothing() -> None:
    return None
