"""`make run` (scripts/run-local.sh) on a machine with no Consul: the bundled registry, ports from
the environment, and a Ctrl-C that stops every process it started.

The script runs in a session of its own, as under a terminal; "Ctrl-C" is SIGINT to its
process group. Every deadline here is a failure bound, never a timing assertion.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from registry.launcher import free_port
from tests.integration.harness import ROOT, wait_for

pytestmark = pytest.mark.integration
SCRIPT = ROOT / "scripts" / "run-local.sh"
QUOTE_KEYS = {"catalog_instance", "instance", "qty", "sku", "total_cents", "unit_price_cents"}


def instance_count() -> int:
    """How many service instances the script starts: one per service, two of catalog."""
    return len(list((ROOT / "services").glob("*/app.py"))) + 1


def free_run(count: int) -> int:
    """The first of *count* consecutive ports that are all free on 127.0.0.1 right now."""

    def free_from(base: int) -> bool:
        for port in range(base, base + count):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    return False
        return True

    return wait_for(
        lambda: next((b for b in (free_port() for _ in range(10)) if free_from(b)), None),
        10,
        f"{count} consecutive free ports",
    )


def path_without_consul() -> str:
    """PATH minus every directory holding a `consul` program."""
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and not os.access(Path(d, "consul"), os.X_OK))


def descendants(root: int) -> set[int]:
    """PIDs of every live process below *root*, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Whether *pid* exists and is not a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Run:
    """One run of the script: its process, its output file, and the ports it was given."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int]
    # Every component seen while the script ran: if the script dies first, they are re-parented
    # and no longer found below it, and the fixture still has to stop them.
    seen: set[int] = field(default_factory=set)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start(tmp_path: Path, **overrides: str) -> Run:
    """Start the script with free ports, no CONSUL_HTTP_ADDR and no consul on PATH."""
    ports = {
        "GATEWAY_PORT": free_port(),
        "GATEWAY_ADMIN_PORT": free_port(),
        "RUN_REGISTRY_PORT": free_port(),
        "RUN_SERVICE_PORT_BASE": free_run(instance_count()),
    }
    env = {k: v for k, v in os.environ.items() if k != "CONSUL_HTTP_ADDR"}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(PATH=path_without_consul(), TMPDIR=str(tmp_path), **overrides)
    log_path = tmp_path / "run-local.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            ["bash", str(SCRIPT)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, like a terminal's job
        )
    return Run(popen, log_path, ports)


@pytest.fixture
def run_local(tmp_path: Path) -> Iterator[list[Run]]:
    """Runs started by a test; whatever is left of them is killed by PID at the end."""
    runs: list[Run] = []
    yield runs
    for run in runs:
        left = descendants(run.popen.pid) | {pid for pid in run.seen if running(pid)}
        if run.popen.poll() is None:
            run.popen.kill()
            run.popen.wait(10)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_for_quote(run: Run) -> Any:
    """Poll the gateway until it answers a quote with 200; return the JSON body."""
    gateway = f"http://127.0.0.1:{run.ports['GATEWAY_PORT']}"

    def quote() -> Any:
        if run.popen.poll() is not None:
            raise AssertionError(f"run-local.sh exited early:\n{run.output()[-4000:]}")
        answer = requests.get(
            f"{gateway}/quote/quote", params={"sku": "apple", "qty": 2}, timeout=5
        )
        return answer.json() if answer.status_code == 200 else None

    body = wait_for(quote, 120, "a quote through the gateway")
    run.seen |= descendants(run.popen.pid)
    return body


def listening_on(port: int) -> set[int]:
    """PIDs of the processes holding the socket that listens on 127.0.0.1:*port* (Linux)."""
    inodes = {
        fields[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())[1] == f"0100007F:{port:04X}" and fields[3] == "0A"
    }
    found = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                found.add(int(fd.parent.parent.name))
        except OSError:
            continue  # gone meanwhile
    return found


def parent(pid: int) -> int:
    """The parent PID of *pid*."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_make_run_serves_a_quote_on_the_bundled_registry_and_ctrl_c_stops_everything(
    tmp_path: Path, run_local: list[Run]
) -> None:
    run = start(tmp_path)
    run_local.append(run)
    body = wait_for_quote(run)
    assert set(body) >= QUOTE_KEYS, body
    assert body["qty"] == 2 and body["total_cents"] == 2 * body["unit_price_cents"], body

    registry = f"http://127.0.0.1:{run.ports['RUN_REGISTRY_PORT']}"
    banners = [line for line in run.output().splitlines() if line.startswith("registry: ")]
    assert banners, run.output()[-4000:]
    assert "bundled" in banners[0] and registry in banners[0], banners[0]
    assert "CONSUL_HTTP_ADDR" in banners[0], banners[0]

    started = descendants(run.popen.pid)
    # The registry, every instance and the gateway, each a gunicorn master with its worker(s).
    assert len(started) >= 1 + 2 * instance_count() + 2, started

    os.killpg(run.popen.pid, signal.SIGINT)
    wait_for(lambda: not any(running(p) for p in started), 60, "every process to stop")
    assert run.popen.wait(10) == 0, run.output()[-4000:]
    assert not list(tmp_path.glob("make-run.*")), "the registry's log folder was left behind"


def test_make_run_stops_everything_when_a_component_dies(
    tmp_path: Path, run_local: list[Run]
) -> None:
    run = start(tmp_path)
    run_local.append(run)
    wait_for_quote(run)
    started = descendants(run.popen.pid)
    # The first catalog's gunicorn master: the holder of its socket that the script started.
    holders = listening_on(run.ports["RUN_SERVICE_PORT_BASE"])
    (catalog,) = {pid for pid in holders if parent(pid) == run.popen.pid}
    assert holders - {catalog}, "no worker holds the catalog socket"

    os.kill(catalog, signal.SIGKILL)  # its worker is orphaned: the script must stop it too
    wait_for(lambda: not any(running(p) for p in started), 60, "every process to stop")
    assert run.popen.wait(10) == 1
    assert f"catalog (pid {catalog}) exited with status 137" in run.output(), run.output()[-4000:]


def test_make_run_stops_when_the_agent_at_consul_http_addr_does_not_answer(
    tmp_path: Path, run_local: list[Run]
) -> None:
    with socket.socket() as reserved:  # bound, never listening: connections are refused
        reserved.bind(("127.0.0.1", 0))
        closed = reserved.getsockname()[1]
        run = start(tmp_path, CONSUL_HTTP_ADDR=f"127.0.0.1:{closed}")
        run_local.append(run)
        assert run.popen.wait(60) == 1
    assert f"CONSUL_HTTP_ADDR is set to 127.0.0.1:{closed}" in run.output()
    assert "no Consul agent answers there" in run.output()


def test_make_run_names_the_variable_whose_port_is_taken(
    tmp_path: Path, run_local: list[Run]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = start(tmp_path, GATEWAY_ADMIN_PORT=str(taken.getsockname()[1]))
        run_local.append(run)
        assert run.popen.wait(60) == 2
    assert "GATEWAY_ADMIN_PORT gives port" in run.output(), run.output()
    assert "in use" in run.output()


def test_make_run_rejects_a_port_that_is_not_a_number(tmp_path: Path, run_local: list[Run]) -> None:
    run = start(tmp_path, RUN_SERVICE_PORT_BASE="81o1")
    run_local.append(run)
    assert run.popen.wait(60) == 2
    assert "RUN_SERVICE_PORT_BASE: expected a port number" in run.output(), run.output()
