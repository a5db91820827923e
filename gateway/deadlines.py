"""The deadlines of one worker's attempts, checked ten times a second.

A timer per request (create, then cancel) cost about a fifteenth of the proxy's own CPU per
request; a list append is nearly free. A deadline is therefore kept to within a tenth of a
second, and the check only looks at attempts still waiting for their answer (an answer that
ended, failed or went on to stream clears its ``timed`` flag).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.upstream import Answer, UpstreamConnection


class Deadlines:
    """Answers that must arrive in time, and the connection to drop if one does not."""

    TICK = 0.1

    def __init__(self) -> None:
        self._entries: list[tuple[float, UpstreamConnection, Answer, float]] = []
        self._scheduled = False

    def add(self, conn: UpstreamConnection, answer: Answer, seconds: float) -> None:
        """Fail *answer* (and close *conn*) if it has not ended after *seconds*."""
        loop = conn.loop
        answer.timed = True
        self._entries.append((loop.time() + seconds, conn, answer, seconds))
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(self.TICK, self._check, loop)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        waiting = []
        for entry in self._entries:
            deadline, conn, answer, seconds = entry
            if not answer.timed:
                continue
            if now >= deadline:
                conn.time_out(seconds)
            else:
                waiting.append(entry)
        self._entries = waiting
        self._scheduled = bool(waiting)
        if waiting:
            loop.call_later(self.TICK, self._check, loop)
