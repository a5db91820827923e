"""A gunicorn worker that serves the gateway on an asyncio event loop (uvloop where installed).

gunicorn stays the process manager: it binds the sockets, forks and supervises workers,
restarts dead ones and drives graceful shutdown. Each worker runs one event loop that accepts on
the shared sockets with :class:`gateway.front.FrontServer`, and tells the master it is alive
once a second, when it also shares its routing state for the routing page
(:mod:`gateway.admin.share`). On SIGTERM a worker stops accepting, closes idle connections, lets
busy ones finish their current answer (up to ``graceful_timeout``) and exits; SIGQUIT and SIGINT
exit at once, as with gunicorn's own workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

import uvloop
from gunicorn.workers.base import Worker  # type: ignore[import-untyped]

from gateway.admin.share import StateShare
from gateway.app import Gateway
from gateway.front import FrontServer
from gateway.metrics_share import MetricsShare

HEARTBEAT = 1.0


class EventLoopWorker(Worker):  # type: ignore[misc]
    """Runs the gateway's front end on one event loop per worker process."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        # Where the workers share their routing state and their metrics; set by the master's
        # post_fork hook.
        self.state_dir: str | None = None
        self.metrics_dir: str | None = None

    def init_process(self) -> None:
        self.loop = uvloop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        super().init_process()

    def init_signals(self) -> None:
        assert self.loop is not None
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        self.loop.add_signal_handler(signal.SIGTERM, self._stop, True)
        self.loop.add_signal_handler(signal.SIGQUIT, self._stop, False)
        self.loop.add_signal_handler(signal.SIGINT, self._stop, False)
        self.loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        self.loop.add_signal_handler(signal.SIGABRT, self._abort)
        signal.signal(signal.SIGWINCH, signal.SIG_IGN)

    def _stop(self, graceful: bool) -> None:
        self.alive = False
        self.graceful = graceful
        if self._wake is not None:
            self._wake.set()

    def _abort(self) -> None:
        self.alive = False
        self.cfg.worker_abort(self)
        sys.exit(1)

    def run(self) -> None:
        assert self.loop is not None
        self.graceful = True
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        gateway: Gateway = self.wsgi
        front = FrontServer(gateway.settings, gateway)
        admin = FrontServer(gateway.settings, gateway.admin)
        servers = []
        for listener in self.sockets:
            address = listener.sock.getsockname()
            # gunicorn binds both listeners (gateway/gunicorn.conf.py); the port tells them apart.
            plane = admin if address[1] == gateway.settings.admin_port else front
            if plane is admin:
                gateway.admin.server_address = address[:2]
            servers.append(
                await loop.create_server(
                    plane.protocol, sock=listener.sock, backlog=self.cfg.backlog
                )
            )
        front.start(loop)
        admin.start(loop)
        share = StateShare(self.state_dir, gateway.proxy, os.getpid()) if self.state_dir else None
        gateway.admin.app.extensions["state_share"] = share
        counts = MetricsShare(self.metrics_dir, os.getpid()) if self.metrics_dir else None
        gateway.admin.app.extensions["metrics_share"] = counts
        self._wake = asyncio.Event()
        while self.alive:
            self.notify()
            if share is not None:
                await share.publish()  # for the routing page, whichever worker is asked
            gateway.proxy.sweep()  # what belongs to services that are gone
            if counts is not None:
                await counts.publish()  # for a scrape, whichever worker answers it
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), HEARTBEAT)
        for server in servers:
            server.close()
        if self.graceful:
            front.begin_shutdown()
            admin.begin_shutdown()
            deadline = loop.time() + self.cfg.graceful_timeout
            while (front.connections or admin.connections) and loop.time() < deadline:
                self.notify()
                await asyncio.sleep(0.05)
        front.stop()
        admin.stop()
        if share is not None:
            share.remove()
        if counts is not None:
            await counts.publish(force=True)  # its last counts, for the master to keep
        if gateway.proxy.spans is not None:
            gateway.proxy.spans.flush(loop)  # queued for export; sent at exit (discovery/otlp.py)
