"""gunicorn's gthread worker, keeping a busy keep-alive connection on its thread.

The stock worker hands every request of a kept-alive connection from the main thread's poller
to the pool and back: two thread hand-offs, a pipe write and two epoll changes per request.
Here the thread that answered a request waits briefly for the next one on the same connection
and serves it itself, as long as no other connection is waiting for a thread; an idle or
outnumbered connection goes back to the poller as before.
"""

from __future__ import annotations

import select
import threading
from typing import Any

from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

# Long enough for a client that sends its next request as soon as it has read the answer.
STICKY_WAIT = 0.002


class StickyThreadWorker(ThreadWorker):  # type: ignore[misc]
    """ThreadWorker whose threads serve back-to-back requests of one connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._backlog = 0  # connections submitted to the pool that no thread has taken yet
        self._backlog_lock = threading.Lock()

    def enqueue_req(self, conn: Any) -> None:
        with self._backlog_lock:
            self._backlog += 1
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        with self._backlog_lock:
            self._backlog -= 1
        result = super().handle(conn)
        # Fairness: a thread stays only while no other connection waits for one.
        while result is True and self.alive and not self._backlog:
            if not conn.parser.unreader.buf.getvalue():
                ready, _, _ = select.select([conn.sock], [], [], STICKY_WAIT)
                if not ready:
                    break
            result = super().handle(conn)
        return result
