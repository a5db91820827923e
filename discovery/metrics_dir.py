"""The folder of prometheus_client's multiprocess mode, owned by one gunicorn master.

Each gunicorn worker is its own process, so its Prometheus values live in files that a scrape
adds up. :func:`create` makes a fresh folder (inside ``PROMETHEUS_MULTIPROC_DIR`` if that is
set, else the system's temporary folder, never the working tree) and points
``PROMETHEUS_MULTIPROC_DIR`` at it before any worker imports prometheus_client; the master
removes it on exit. It never deletes anything it did not create.

A gunicorn master makes its folder through :func:`master_folder`, in its ``when_ready`` hook:
once its sockets are bound and before it forks a worker. Made any earlier (when the config
file is read), it was left behind by a master that could not bind (gunicorn then exits at
once, without ``on_exit``) and by every ``gunicorn --check-config``.

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
    return e.get("PROMETHEUS_MULTIPROC_DIR") or None


def create(
    prefix: str,
    environ: Mapping[str, str] | None = None,
    parent: str | None = None,
    export: bool = True,
) -> MetricsDir:
    """Make the folder (inside *parent*, else ``PROMETHEUS_MULTIPROC_DIR`` if set) and, with
    *export*, point the variable at it."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent or multiprocess_dir(environ))
    if export:
        # The one write of the variable, and why it must be one: prometheus_client takes its
        # multiprocess folder from the environment only, in each worker forked from here.
        os.environ[VARIABLE] = path
    return MetricsDir(path)


class MasterFolder:
    """The folder of one gunicorn master: made in ``when_ready``, removed in ``on_exit``."""

    def __init__(self, prefix: str, parent: str | None) -> None:
        self.prefix, self.parent = prefix, parent
        self.made: MetricsDir | None = None

    def create(self, export: bool = True) -> MetricsDir:
        """Make the folder, once (a second call returns the same one); see :func:`create`."""
        if self.made is None:
            self.made = create(self.prefix, parent=self.parent, export=export)
        return self.made

    def worker_exited(self, pid: int) -> None:
        """Drop the live gauges of a worker that exited (its counters keep counting)."""
        if self.made is not None:
            self.made.worker_exited(pid)

    def remove(self) -> None:
        """Remove the folder, if it was made."""
        if self.made is not None:
            self.made.remove()
            self.made = None


_MASTER_FOLDERS: dict[str, MasterFolder] = {}


def master_folder(prefix: str) -> MasterFolder:
    """This master's folder for *prefix*, the same object each time gunicorn reads its config.

    A SIGHUP makes gunicorn run its config file again, into a new module; the folder, and
    where it goes (``PROMETHEUS_MULTIPROC_DIR`` as it was at start, not the folder it now
    names), must outlive that.
    """
    found = _MASTER_FOLDERS.get(prefix)
    if found is None:
        found = _MASTER_FOLDERS[prefix] = MasterFolder(prefix, multiprocess_dir())
    return found
