"""Each worker's metrics, shared through files so that a scrape adds up every worker's counts.

The kernel hands a scrape to one gunicorn worker, and every worker counts on its own
(:mod:`gateway.metrics`). Each writes its snapshot to ``worker-<pid>-<tag>.json`` in a folder
its master made and removes (``gateway/gunicorn.conf.py``): once a second if it counted
anything new (from the heartbeat, ``gateway/worker.py``), and right before it answers a scrape.
A temporary file and ``os.replace``, so a reader sees a whole snapshot or the previous one. A
scrape reads every worker's file and adds them up (:mod:`gateway.metrics_merge`).

A worker that exits leaves its counts behind, or every counter would drop: the master folds
the worker's last file into ``exited.json`` (:func:`fold_exited`, keeping the services its
catalog still listed), then removes it. ``exited.json`` names the file it folded last, which a
scrape then skips, and a scrape whose worker file vanishes as it reads starts over: each
worker's counts are added exactly once.

Each file holds the services Consul lists now, not every one seen: its size is bounded by the
catalog (about 120 bytes per service and status code).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from gateway import metrics
from gateway.metrics import Snapshot
from gateway.metrics_merge import merge

EXITED = "exited.json"
ATTEMPTS = 3  # reads of the folder a scrape tries before it settles for what it has
CHUNK = 200  # rows encoded per turn of the event loop (about a millisecond)
log = logging.getLogger(__name__)


class MetricsShare:
    """One worker's end of the metrics folder: it writes its counts and adds up everyone's."""

    def __init__(self, folder: str, pid: int) -> None:
        self.folder = Path(folder)
        # A tag as well as the pid: a later worker with a recycled pid is another file.
        self.name = f"worker-{pid}-{secrets.token_hex(4)}.json"
        self._written: tuple[Any, ...] | None = None
        self._last_error = ""
        # One write at a time: an older snapshot written last would make a counter go down.
        self._lock = asyncio.Lock()

    async def publish(self, force: bool = False) -> None:
        """Write this worker's snapshot if it counted anything since (on the event loop).

        A large catalog's snapshot is encoded ``CHUNK`` rows at a time, giving the loop back
        in between, so that no request waits for all of it.
        """
        async with self._lock:
            worker = metrics.Worker
            state = (metrics.TALLY.observed, worker.known, worker.last_sync)
            if state == self._written and not force:
                return
            text = await _encoded(metrics.snapshot(prune=True))
            try:
                _write(self.folder / self.name, text)
                self._written, self._last_error = state, ""
            except OSError as exc:
                if str(exc) != self._last_error:  # once per kind of failure, not once a second
                    log.warning("cannot share this worker's metrics: %s", exc)
                self._last_error = str(exc)

    def remove(self) -> None:
        """Take this worker's file away (for tests; an exiting worker leaves it to be folded)."""
        (self.folder / self.name).unlink(missing_ok=True)

    def gather(self) -> Snapshot:
        """Every worker's counts added up, exited ones' included, for the services listed now."""
        known = metrics.Worker.known
        for _ in range(ATTEMPTS):
            exited = _read(self.folder / EXITED)
            folded = set(exited.get("folded", ())) if exited else set()
            try:
                snaps = [
                    _read(path, missing_ok=False)
                    for path in sorted(self.folder.glob("worker-*.json"))
                    if path.name not in folded
                ]
            except FileNotFoundError:
                continue  # a worker exited and was folded meanwhile: read the folder again
            return merge([s for s in (*snaps, exited) if s], known)
        log.warning("workers kept exiting during %d reads of %s", ATTEMPTS, self.folder)
        return merge([metrics.snapshot()], known)


def fold_exited(folder: str, pid: int) -> None:
    """Add worker *pid*'s last counts to ``exited.json``, then remove its file (in the master)."""
    base = Path(folder)
    for path in base.glob(f"worker-{pid}-*.json"):
        dead = _read(path)
        try:
            if dead:
                merged = merge([_read(base / EXITED) or {"series": {}}, dead], dead.get("known"))
                merged["series"][metrics.LAST_SYNC.name] = []  # a gauge of live workers only
                merged["folded"] = [path.name]
                _write(base / EXITED, json.dumps(merged, separators=(",", ":")))
            path.unlink(missing_ok=True)
        except OSError as exc:  # the master carries on; the worker's file still counts
            log.warning("cannot keep the metrics of exited worker %d: %s", pid, exc)


def _read(path: Path, missing_ok: bool = True) -> Snapshot | None:
    """The snapshot in *path*; None if it is missing (when *missing_ok*) or unreadable."""
    try:
        snap: Snapshot = json.loads(path.read_bytes())
        if not isinstance(snap.get("series"), dict):
            raise ValueError("no series")
        return snap
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("ignoring the metrics file %s: %s", path, exc)
        return None


async def _encoded(snap: Snapshot) -> str:
    """*snap* as JSON, ``CHUNK`` rows at a time."""
    families = []
    for name, rows in snap["series"].items():
        pieces = []
        for start in range(0, len(rows), CHUNK):
            if start:
                await asyncio.sleep(0)
            pieces.append(json.dumps(rows[start : start + CHUNK], separators=(",", ":"))[1:-1])
        families.append(f"{json.dumps(name)}:[{','.join(pieces)}]")
    return f'{{"known":{json.dumps(snap["known"])},"series":{{{",".join(families)}}}}}'


def _write(path: Path, text: str) -> None:
    """Write *path* whole or not at all: a temporary file, then a rename over it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
