"""Threads that keep checks up to date: HTTP and TCP probes at their interval, TTL timers.

Like Consul (agent/checks/check.go), an interval check waits a random stagger within its first
interval before the first probe, and an interval below one second is raised to one second
(``checks.MinInterval``). A TTL check turns critical with Output "TTL expired" when no update
arrives within its TTL, and stays so until the next update re-arms it. An update's output is
cut to its first 4 KiB (``CheckTTL.SetStatus``, ``check_output_max_size``).

A runner never dies with a status frozen: any duration Go accepts is waited out in pieces
(``durations.WAIT_PIECE``), and an unexpected error in a probe or a runner is logged, reported
as the check's critical output, and the runner carries on after a pause.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from .durations import WAIT_PIECE
from .model import CRITICAL, CheckSpec
from .probes import probe_http, probe_tcp

log = logging.getLogger(__name__)

MIN_INTERVAL = 1.0
#: Consul's ``checks.BufSize`` and default ``check_output_max_size``, in bytes.
OUTPUT_MAX = 4 * 1024

#: Called with (runner, status, output) whenever a runner has a result; the receiver drops
#: results of runners it no longer holds (the check was replaced or removed meanwhile).
Report = Callable[["Runner", str, str], None]


class Runner:
    """Base for one check's background thread; ``stop`` ends it."""

    def __init__(self, check_id: str, spec: CheckSpec, report: Report) -> None:
        self.check_id = check_id
        self.spec = spec
        self._report = report
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._guarded, name=f"check {check_id}", daemon=True)

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; a result it is computing is then dropped."""
        self._stopped.set()

    def report(self, status: str, output: str) -> None:
        """Pass a result on unless the runner was stopped meanwhile."""
        if not self._stopped.is_set():
            self._report(self, status, output)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``, however long, or until stopped; True once stopped."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stopped.wait(min(remaining, WAIT_PIECE)):
                return True
        return self._stopped.is_set()

    def _guarded(self) -> None:
        while not self._stopped.is_set():
            try:
                self._run()
            except Exception as err:  # a bug must not leave the check's status frozen
                log.exception("check %s: runner failed; restarting it", self.check_id)
                self.report(CRITICAL, f"check runner failed: {err!r}")
                self.pause(MIN_INTERVAL)

    def _run(self) -> None:
        raise NotImplementedError


class IntervalRunner(Runner):
    """Probes an HTTP or TCP target every interval."""

    def _run(self) -> None:
        interval = max(self.spec.interval_ns / 1e9, MIN_INTERVAL)
        probe = probe_http if self.spec.http else probe_tcp
        if self.pause(random.uniform(0, interval)):
            return
        while not self._stopped.is_set():
            status, output = probe(self.spec)
            self.report(status, output)
            if self.pause(interval):
                return


def truncate_output(output: str) -> str:
    """Consul's cut of a TTL update's output to ``OUTPUT_MAX`` bytes, saying how much it kept.

    Go slices the UTF-8 bytes, possibly inside a character, whose bytes its JSON encoder then
    writes as U+FFFD: decoding with ``errors="replace"`` gives the same text.
    """
    raw = output.encode()
    if len(raw) <= OUTPUT_MAX:
        return output
    head = raw[:OUTPUT_MAX].decode(errors="replace")
    return f"{head} ... (captured {OUTPUT_MAX} of {len(raw)} bytes)"


class TtlRunner(Runner):
    """Marks the check critical when its TTL passes without an update."""

    def __init__(self, check_id: str, spec: CheckSpec, report: Report) -> None:
        super().__init__(check_id, spec, report)
        self._renewed = threading.Condition()
        self._deadline: float | None = time.monotonic() + spec.ttl_ns / 1e9
        self._last_output = ""

    def set_status(self, status: str, output: str) -> str:
        """Record an update from the API, re-arm the TTL and return the stored output."""
        output = truncate_output(output)
        with self._renewed:
            self._last_output = output
            self._deadline = time.monotonic() + self.spec.ttl_ns / 1e9
            self._renewed.notify_all()
        self.report(status, output)
        return output

    def stop(self) -> None:
        super().stop()
        with self._renewed:
            self._renewed.notify_all()

    def _run(self) -> None:
        while not self._stopped.is_set():
            expired = self._wait_for_expiry()
            if expired is not None:
                # Reported outside the lock: the report takes the store lock, and API threads
                # holding the store lock call set_status.
                self.report(CRITICAL, expired)

    def _wait_for_expiry(self) -> str | None:
        with self._renewed:
            if self._deadline is None:
                self._renewed.wait()
                return None
            remaining = self._deadline - time.monotonic()
            if remaining > 0:
                self._renewed.wait(min(remaining, WAIT_PIECE))
                return None
            self._deadline = None
            if self._last_output:
                return f"TTL expired (last output before timeout follows): {self._last_output}"
            return "TTL expired"


def runner_for(check_id: str, spec: CheckSpec, report: Report) -> Runner | None:
    """The runner a check of this kind needs, or None for checks nothing runs."""
    if spec.kind == "ttl":
        return TtlRunner(check_id, spec, report)
    if spec.kind in ("http", "tcp"):
        return IntervalRunner(check_id, spec, report)
    return None
