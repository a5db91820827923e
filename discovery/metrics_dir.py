"""The folder of prometheus_client's multiprocess mode, owned by one gunicorn master.

Each gunicorn worker is its own process, so its Prometheus values live in files that a scrape
adds up. :func:`create` makes a fresh folder (inside ``PROMETHEUS_MULTIPROC_DIR`` if that is
set, else the system's temporary folder, never the working tree) and points
``PROMETHEUS_MULTIPROC_DIR`` at it before any worker imports prometheus_client; the master
removes it on exit. It never deletes anything it did not create.

prometheus_client is imported lazily: the master must not load it before the variable is set,
or the workers it forks would inherit single-process values.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class MetricsDir:
    """A multiprocess folder this process made."""

    path: str

    def worker_exited(self, pid: int) -> None:
        """Drop the live gauges of a worker that exited (its counters keep counting)."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.path)  # type: ignore[no-untyped-call]

    def remove(self) -> None:
        """Remove the folder and every worker's files in it."""
        shutil.rmtree(self.path, ignore_errors=True)


def multiprocess_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """The multiprocess folder of this process, or None in single-process mode.

    Read once, when a component starts (a worker's ``/metrics`` is served by what was decided
    then); prometheus_client reads the same variable when it is imported.
    """
    e = os.environ if environ is None else environ
    return e.get(VARIABLE) or None


def create(prefix: str, environ: Mapping[str, str] | None = None) -> MetricsDir:
    """Make the folder (inside ``PROMETHEUS_MULTIPROC_DIR`` if set) and point the variable at it."""
    path = tempfile.mkdtemp(prefix=prefix, dir=multiprocess_dir(environ))
    # The one write of the variable, and why it must be one: prometheus_client takes its
    # multiprocess folder from the environment only, in each worker gunicorn forks from here.
    os.environ[VARIABLE] = path
    return MetricsDir(path)
