"""Start the registry as a real subprocess for tests and scripts, and always stop it.

    with run_registry() as consul:
        requests.get(f"{consul.addr}/v1/status/leader")
        consul.stop()    # a Consul outage...
        consul.start()   # ...and a restart on the same port, with empty state

The process listens on 127.0.0.1. Its stderr goes to a temporary log file (never a pipe that
could fill up and block it); ``read_log()`` returns what it wrote, for failure messages.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class RegistryProcess:
    """A registry subprocess on a fixed loopback port; ``start``/``stop`` may be repeated."""

    def __init__(self, port: int, extra_args: tuple[str, ...], log_path: Path) -> None:
        self.port = port
        self.addr = f"http://127.0.0.1:{port}"
        self.extra_args = extra_args
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the subprocess is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        """The running process's ID (for tests that look at its threads)."""
        if self._process is None:
            raise RuntimeError(f"registry on port {self.port} is not running")
        return self._process.pid

    def start(self) -> None:
        """Start the process (fresh, empty state) and wait until it answers."""
        if self.running:
            raise RuntimeError(f"registry already running on port {self.port}")
        command = [sys.executable, "-m", "registry", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), *self.extra_args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self._wait_until_ready()

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def read_log(self) -> str:
        """Everything the process has written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"registry exited during start:\n{self.read_log()}")
            try:
                with opener.open(f"{self.addr}/v1/status/leader", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"registry did not answer within {START_TIMEOUT}s:\n{self.read_log()}")


@contextmanager
def run_registry(port: int | None = None, *extra_args: str) -> Iterator[RegistryProcess]:
    """Run the registry on ``port`` (a free one if None) with extra CLI flags; always stop it."""
    with tempfile.TemporaryDirectory(prefix="registry-") as tmp:
        process = RegistryProcess(port or free_port(), extra_args, Path(tmp) / "registry.log")
        try:
            process.start()
            yield process
        finally:
            process.stop()


#: The names from when the registry was the tests' "Consul double"; tests and scripts use them.
ConsulDouble = RegistryProcess
run_consul_double = run_registry


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
