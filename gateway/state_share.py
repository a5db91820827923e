"""Each worker's routing bookkeeping, shared through files so the routing page shows them all.

The kernel hands each admin request to one gunicorn worker, and every worker keeps its own
counters (:mod:`discovery.stats`). So that ``/_gateway/state`` speaks for the whole gateway,
each worker writes a compact snapshot of its counters once a second, from its event loop's
heartbeat (``gateway/worker.py``), to ``<pid>.json`` in a folder its master made and removes
(``gateway/gunicorn.conf.py``). The write is a temporary file and ``os.replace``, so a reader
sees a whole snapshot or the previous one. The worker that answers reads its own counters
live and the others' files; a file older than ``MAX_AGE`` seconds, or unreadable, counts as a
worker that did not answer (logged, never an error to the client), and the file of a process
that is gone is skipped (its master removes it too). :mod:`gateway.worker_merge` adds them up.

A snapshot holds one entry per instance that this worker has talked to and Consul still
lists, so its size is bounded by the catalog; only the non-zero seconds of the window go in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discovery.stats import DEFAULT_RTT, InstanceStats
from discovery.window import WINDOW_SECONDS
from gateway.worker_merge import Snapshot, merge

if TYPE_CHECKING:  # gunicorn's master imports this module for forget(), without the proxy
    from gateway.proxy import Proxy

MAX_AGE = 5.0  # seconds; written every second, so older means the worker is stuck or gone
log = logging.getLogger(__name__)


def snapshot(proxy: Proxy, pid: int, now: float) -> Snapshot:
    """This process's counters for every instance Consul lists, as JSON-ready data."""
    instances: dict[str, Any] = {}
    for service in list(proxy.watcher.services.values()):
        for instance in service.instances:
            stats = proxy.stats.find(instance.id)
            if stats is None or _untouched(stats, now):
                continue
            first = int(now) - WINDOW_SECONDS + 1  # the second of the series' first count
            instances[instance.id] = {
                "in_flight": stats.outstanding,
                "ewma": stats.ewma,
                "attempts": _pairs(stats.attempts.series(now), first),
                "failures": _pairs(stats.failures.series(now), first),
                "consecutive_failures": stats.consecutive_failures,
                "last_failure": stats.last_failure,
                "last_failure_at": stats.last_failure_at,
                "ejections": stats.ejections,
                "ejection": None
                if not stats.ejections
                else {
                    "reason": stats.ejection_reason,
                    "failures": stats.ejection_failures,
                    "at": stats.ejected_at,
                    "until": stats.ejected_until,
                    "awaiting_consul": stats.awaiting_consul,
                },
            }
    return {
        "pid": pid,
        "at": now,
        "last_sync": proxy.watcher.last_success,
        "retry_budget": proxy.budget.usage(),
        "instances": instances,
    }


def _untouched(stats: InstanceStats, now: float) -> bool:
    """Made by a balancer's look (an explain preview), with nothing measured: no entry at all."""
    return (
        stats.ewma == DEFAULT_RTT
        and not (stats.outstanding or stats.ejections or stats.last_failure)
        and not stats.attempts.total(now)
    )


def _pairs(counts: list[int], first_second: int) -> list[list[int]]:
    return [[first_second + i, n] for i, n in enumerate(counts) if n]


class StateShare:
    """One worker's end of the shared folder: it writes its snapshot and reads the others'."""

    def __init__(self, folder: str, proxy: Proxy, pid: int) -> None:
        self.folder, self.proxy, self.pid = Path(folder), proxy, pid
        self._last_error = ""

    def publish(self) -> None:
        """Write this worker's snapshot (a whole file or none: write, then rename)."""
        data = json.dumps(snapshot(self.proxy, self.pid, time.monotonic()), separators=(",", ":"))
        temporary = self.folder / f".{self.pid}.tmp"
        try:
            temporary.write_text(data)
            os.replace(temporary, self.folder / f"{self.pid}.json")
            self._last_error = ""
        except OSError as exc:
            if str(exc) != self._last_error:  # once per kind of failure, not once a second
                log.warning("cannot share this worker's routing state: %s", exc)
            self._last_error = str(exc)

    def others(self, now: float) -> tuple[list[Snapshot], list[dict[str, Any]]]:
        """The other live workers' snapshots, and those that did not answer, with why."""
        found: list[Snapshot] = []
        silent: list[dict[str, Any]] = []
        for path in sorted(self.folder.glob("*.json")):
            pid = int(path.stem) if path.stem.isdigit() else None
            if pid is None or pid == self.pid or not _alive(pid):
                continue
            try:
                snap = _read(path, now)
            except FileNotFoundError:
                continue  # the worker exited between the listing and the read
            if snap is None:
                silent.append({"pid": pid, "why": "unreadable snapshot"})
            elif now - snap["at"] > MAX_AGE:
                silent.append({"pid": pid, "why": f"no snapshot for {now - snap['at']:.0f} s"})
            else:
                found.append(snap)
        return found, silent

    def remove(self) -> None:
        """Take this worker's snapshot away (it is exiting)."""
        forget(str(self.folder), self.pid)


def forget(folder: str, pid: int) -> None:
    """Remove the snapshot of worker *pid* (it exited); gunicorn's master calls this."""
    for name in (f"{pid}.json", f".{pid}.tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process under a reused pid: the age check decides
    return True


def _read(path: Path, now: float) -> Snapshot | None:
    """The snapshot in *path*, or None (logged) if it is not one this gateway wrote."""
    try:
        snap: Snapshot = json.loads(path.read_bytes())
        merge([snap], now)  # every field the merge reads is there and of the right type
        if not isinstance(snap["pid"], int) or not isinstance(snap["at"], float):
            raise TypeError("pid or at")
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        log.warning("ignoring the worker snapshot %s: %s", path, exc)
        return None
    return snap
