"""Real processes for integration tests: gunicorn instances on loopback, and polling helpers.

Every wait polls with a deadline; every process is stopped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

from registry.launcher import free_port
from tests import polling

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
SERVICE_CONF = "services/gunicorn.conf.py"  # every sample service; SERVICE_NAME picks the app
T = TypeVar("T")


# Not ready yet, rather than wrong: a process still starting, a route not yet learnt.
TRANSIENT = (requests.RequestException, OSError, KeyError, ValueError)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll *check* until it returns something truthy, tolerating transient errors."""
    return polling.wait_for(check, timeout, what, interval, tolerate=TRANSIENT)


class Process:
    """A gunicorn master started from one of the project's config files."""

    def __init__(
        self,
        name: str,
        conf: str,
        env: dict[str, str],
        port: int,
        log_dir: Path,
        root: Path = ROOT,
        open_files: int | None = None,
    ) -> None:
        self.name, self.conf, self.port, self.root = name, conf, port, root
        self.open_files = open_files  # RLIMIT_NOFILE of the master and its workers
        # Metric folders inside the test's own folder: a master killed by a test (no on_exit)
        # leaves nothing behind in the system's temporary directory.
        multiproc = {"PROMETHEUS_MULTIPROC_DIR": str(log_dir)}
        self.env = {**os.environ, "PYTHONPATH": str(root), **multiproc, **env}
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_auth(self) -> dict[str, str]:
        """The admin API's Authorization header, if this gateway has a token file."""
        path = self.env.get("GATEWAY_ADMIN_TOKEN_FILE")
        return {"Authorization": f"Bearer {Path(path).read_text().strip()}"} if path else {}

    @property
    def admin_url(self) -> str:
        """A gateway's admin listener (``/_gateway/*`` is served there only)."""
        return f"http://127.0.0.1:{self.env['GATEWAY_ADMIN_PORT']}"

    def start(self) -> Process:
        argv = [GUNICORN, "-c", self.conf]
        if self.open_files is not None:
            # The shell's ulimit rather than a preexec_fn, which is unsafe beside threads.
            argv = ["/bin/sh", "-c", f'ulimit -n {self.open_files} && exec "$0" "$@"', *argv]
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                argv,
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group, so kill() reaches the workers
            )
        return self

    def wait_http(self, path: str, timeout: float = 15.0) -> None:
        """Wait until *path* answers 2xx, failing early if the process died."""

        def ready() -> bool:
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.log()}"
                )
            if path.startswith("/_gateway/"):
                return requests.get(self.admin_url + path, headers=self.admin_auth, timeout=1).ok
            return requests.get(self.url + path, timeout=1).ok

        wait_for(ready, timeout, f"{self.name} to answer {path}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the master and its workers at once, like a crashed host."""
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(5)

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; also reaps orphaned workers of a killed master."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.terminate()  # a second SIGTERM (after stop_all's) changes nothing
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # any worker the master left behind

    def worker_pids(self) -> list[int]:
        """The master's child processes: its workers."""
        assert self.popen is not None
        pid = self.popen.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(child) for child in children]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def stop_all(procs: list[Process]) -> None:
    """Stop many processes at once: they drain in parallel instead of one after another."""
    for proc in procs:
        if proc.popen is not None and proc.popen.poll() is None:
            proc.popen.terminate()
    for proc in procs:
        proc.stop()


def service_env(name: str, port: int, consul: str, **extra: str) -> dict[str, str]:
    """Environment of a sample service instance on loopback with fast health checks.

    *name* is the app served and the name registered; ``SERVICE_NAME=...`` in *extra*
    registers the same app under another name.
    """
    return {
        "SERVICE_APP": name,
        "SERVICE_NAME": name,
        "SERVICE_PORT": str(port),
        "SERVICE_ADDRESS": "127.0.0.1",
        "SERVICE_BIND": "127.0.0.1",
        "SERVICE_CHECK_INTERVAL": "1s",
        "SERVICE_CHECK_TIMEOUT": "500ms",
        "SERVICE_DRAIN_DELAY": "500ms",
        "SERVICE_REGISTER_TIMEOUT": "20s",
        "CONSUL_HTTP_ADDR": consul,
        **extra,
    }


def gateway_env(port: int, consul: str, **extra: str) -> dict[str, str]:
    """Environment of a gateway on loopback, its admin listener on a free port of its own.

    Tests read instance details from ``/_gateway/routes``, so the detailed view is on; the
    default (off) is checked by the tests of the admin plane.
    """
    return {
        "GATEWAY_PORT": str(port),
        "GATEWAY_BIND": "127.0.0.1",
        "GATEWAY_ADMIN_PORT": str(free_port()),
        "GATEWAY_ADMIN_DETAIL": "true",
        "CONSUL_HTTP_ADDR": consul,
        "WEB_CONCURRENCY": "2",
        "GATEWAY_WATCH_WAIT": "10s",
        **extra,
    }


def passing_ids(consul: str, service: str) -> set[str]:
    """IDs of the passing instances of *service*, straight from Consul."""
    entries: list[dict[str, Any]] = requests.get(
        f"{consul}/v1/health/service/{service}", params={"passing": "1"}, timeout=5
    ).json()
    return {e["Service"]["ID"] for e in entries}


def wait_for_status(url: str, status: int, timeout: float, what: str) -> requests.Response:
    """GET *url* until it answers *status*; return that response."""

    def check() -> list[requests.Response] | None:
        response = requests.get(url, timeout=10)
        # A list, because a Response with an error status is itself falsy.
        return [response] if response.status_code == status else None

    return wait_for(check, timeout, what)[0]
