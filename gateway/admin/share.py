"""Each worker's routing bookkeeping, shared through files so the routing page shows them all.

The kernel hands each admin request to one gunicorn worker, and every worker keeps its own
counters (:mod:`discovery.stats`). So that ``/_gateway/state`` speaks for the whole gateway,
each worker writes a compact snapshot of its counters once a second, from its event loop's
heartbeat (``gateway/worker.py``), to ``<pid>.json`` in a folder its master made and removes
(``gateway/gunicorn.conf.py``). The write is a temporary file and ``os.replace``, so a reader
sees a whole snapshot or the previous one. The worker that answers reads its own counters
live and the others' files; a file older than ``MAX_AGE`` seconds, or unreadable, counts as a
worker that did not answer (logged, never an error to the client), and the file of a process
that is gone is skipped (its master removes it too). :mod:`gateway.admin.merge` adds them up.

A snapshot holds one entry per instance that this worker has talked to and Consul still
lists, so its size is bounded by the catalog; a window's counts go in newest first, without the
idle seconds that end it (40 KiB for 100 instances busy every second, 0.4 MiB for 1,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discovery.stats import DEFAULT_RTT, InstanceStats
from gateway.admin.merge import Snapshot, merge

if TYPE_CHECKING:  # gunicorn's master imports this module for forget(), without the proxy
    from gateway.proxy import Proxy

MAX_AGE = 5.0  # seconds; written every second, so older means the worker is stuck or gone
CHUNK = 100  # instances per turn of the event loop while a snapshot is built (~2 ms)
log = logging.getLogger(__name__)


def entries(proxy: Proxy, now: float) -> Iterator[tuple[str, dict[str, Any]]]:
    """This process's counters of each instance Consul lists that it has measured."""
    for service in list(proxy.watcher.services.values()):
        for instance in service.instances:
            stats = proxy.stats.find(instance.id)
            if stats is None:
                continue
            attempts = stats.attempts.by_age(now)
            if not attempts and _untouched(stats):
                continue
            yield (
                instance.id,
                {
                    "in_flight": stats.outstanding,
                    "ewma": stats.ewma,
                    # Counts per second, newest first; "second" is the newest's (shared clock).
                    "second": int(now),
                    "attempts": attempts,
                    "failures": stats.failures.by_age(now),
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
                },
            )


def head(proxy: Proxy, pid: int, now: float) -> Snapshot:
    """A snapshot's worker-wide part, its instances still empty."""
    return {
        "pid": pid,
        "at": now,
        "last_sync": proxy.watcher.last_success,
        "retry_budget": proxy.budget.usage(),
        "instances": {},
    }


def snapshot(proxy: Proxy, pid: int, now: float) -> Snapshot:
    """This process's counters for every instance Consul lists, as JSON-ready data."""
    return {**head(proxy, pid, now), "instances": dict(entries(proxy, now))}


def _untouched(stats: InstanceStats) -> bool:
    """Made by a balancer's look (an explain preview), with nothing measured: no entry at all."""
    return stats.ewma == DEFAULT_RTT and not (
        stats.outstanding or stats.ejections or stats.last_failure
    )


class StateShare:
    """One worker's end of the shared folder: it writes its snapshot and reads the others'."""

    def __init__(self, folder: str, proxy: Proxy, pid: int) -> None:
        self.folder, self.proxy, self.pid = Path(folder), proxy, pid
        self._last_error = ""
        self._warned: dict[int, str] = {}  # pid: what was wrong with its file, logged once

    async def publish(self) -> None:
        """Write this worker's snapshot (a whole file or none: write, then rename).

        A large catalog's snapshot is built and encoded ``CHUNK`` instances at a time, giving
        the loop back in between, so that no request waits for all of it.
        """
        now = time.monotonic()
        parts = []
        for n, (instance_id, entry) in enumerate(entries(self.proxy, now), 1):
            parts.append(f"{json.dumps(instance_id)}:{json.dumps(entry, separators=(',', ':'))}")
            if n % CHUNK == 0:
                await asyncio.sleep(0)
        worker = {k: v for k, v in head(self.proxy, self.pid, now).items() if k != "instances"}
        data = json.dumps(worker, separators=(",", ":"))[:-1]  # its closing brace comes last
        data += ',"instances":{' + ",".join(parts) + "}}"
        temporary = self.folder / f".{self.pid}.tmp"
        try:
            temporary.write_text(data)
            os.replace(temporary, self.folder / f"{self.pid}.json")
            self._last_error = ""
        except OSError as exc:
            if str(exc) != self._last_error:  # once per kind of failure, not once a second
                log.warning("cannot share this worker's routing state: %s", exc)
            self._last_error = str(exc)

    def remove(self) -> None:
        """Take this worker's snapshot away (it is exiting)."""
        forget(str(self.folder), self.pid)

    def others(self, now: float) -> tuple[list[Snapshot], list[dict[str, Any]]]:
        """The other live workers' snapshots, and those that did not answer, with why."""
        found: list[Snapshot] = []
        silent: list[dict[str, Any]] = []
        for path in sorted(self.folder.glob("*.json")):
            pid = int(path.stem) if path.stem.isdigit() else None
            if pid is None or pid == self.pid or not _alive(pid):
                continue
            try:
                snap = _read(path, pid, now)
            except FileNotFoundError:
                continue  # the worker exited between the listing and the read
            except SnapshotError as exc:
                if self._warned.get(pid) != str(exc):  # the page asks every second: log once
                    log.warning("ignoring the worker snapshot %s: %s", path, exc)
                self._warned[pid] = str(exc)
                silent.append({"pid": pid, "why": "unreadable snapshot"})
                continue
            self._warned.pop(pid, None)
            if now - snap["at"] > MAX_AGE:
                silent.append({"pid": pid, "why": f"no snapshot for {now - snap['at']:.0f} s"})
            else:
                found.append(snap)
        return found, silent


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


class SnapshotError(ValueError):
    """A file in the shared folder is not a snapshot this gateway's workers write."""


def _read(path: Path, pid: int, now: float) -> Snapshot:
    """The snapshot of worker *pid* in *path*; SnapshotError if it is not a whole one."""
    try:
        snap: Snapshot = json.loads(path.read_bytes())
        merge([snap], now)  # every field the merge reads is there and of the right type
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise SnapshotError(f"{type(exc).__name__}: {exc}") from exc
    if snap["pid"] != pid or not isinstance(snap["at"], float):
        raise SnapshotError("its pid or time is not that of the worker it is named after")
    return snap
