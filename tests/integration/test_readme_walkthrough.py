"""The README's quick start and curl walkthrough, run as written against a real `make run` stack.

`scripts/run-local.sh` starts on free ports with no Consul anywhere, so it uses the bundled
registry, as on a fresh machine. Each ``$ curl`` line of the two sections is sent as curl would
send it; the answer must have the status the README shows and the same JSON keys (instance
names, IDs and numbers vary).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from registry.launcher import free_port
from tests import readme_doc as doc
from tests.integration.harness import wait_for
from tests.integration.test_run_local import (
    descendants,
    free_run,
    instance_count,
    path_without_consul,
    running,
)

pytestmark = pytest.mark.integration

SECTIONS = ("Quick start", "A walk through with curl")
# The ports the README shows, and the variable `make run` takes each one from.
README_PORTS = {
    8080: "GATEWAY_PORT",
    9090: "GATEWAY_ADMIN_PORT",
    8101: "RUN_SERVICE_PORT_BASE",
}
# What curl 7.88 sends by itself; the echo example shows the headers the gateway forwards.
CURL_HEADERS = {"User-Agent": "curl/7.88.1", "Accept": "*/*"}


class Stack:
    """`make run`'s script on free ports; its ports by the README's port numbers."""

    def __init__(self, log: Path) -> None:
        self.ports = {8080: free_port(), 9090: free_port(), 8101: free_run(instance_count())}
        self.registry_port = free_port()
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None
        # The components, noted once they run: if the script dies first they are re-parented.
        self.seen: set[int] = set()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "GATEWAY_"))}
        # No `consul` on PATH: only the virtualenv's and the system's own folders.
        env["PATH"] = path_without_consul()
        env["RUN_REGISTRY_PORT"] = str(self.registry_port)
        env.update({variable: str(self.ports[shown]) for shown, variable in README_PORTS.items()})
        return env

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                ["bash", "scripts/run-local.sh"],
                cwd=doc.ROOT,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def stop(self) -> None:
        """Ctrl-C, as a terminal sends it; then every component seen is gone, by PID."""
        if self.popen is None:
            return
        left = descendants(self.popen.pid) | self.seen
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        stuck = {pid for pid in left if running(pid)}
        for pid in stuck:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not stuck, f"make run left {sorted(stuck)} running:\n{self.log.read_text()}"

    def send(self, command: doc.Curl) -> tuple[int, dict[str, str], bytes]:
        """The request *command* makes, sent as curl sends it, to this stack's port."""
        url = urlsplit(command.url)
        port = self.ports.get(url.port or 80)
        assert port, f"{command.command}: port {url.port} is not one `make run` serves"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            path = url.path + (f"?{url.query}" if url.query else "")
            connection.putrequest(command.method, path, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", f"{url.hostname}:{url.port}")
            headers = {**CURL_HEADERS, **command.headers}
            body = command.data.encode() if command.data is not None else None
            if body is not None:
                headers["Content-Length"] = str(len(body))
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("make-run") / "make-run.log")
    stack.start()
    try:
        wait_for(
            lambda: (
                stack.send(doc.parse_curl("curl localhost:8080/quote/quote?sku=apple", ""))[0]
                == 200
                or _exited(stack)
            ),
            60,
            "make run's gateway to route /quote",
        )
        assert stack.popen is not None and stack.popen.poll() is None, stack.log.read_text()
        # Every instance the walkthrough shows in turn: both catalog replicas pass.
        wait_for(lambda: _passing(stack) >= 4, 30, "every instance to pass its check")
        stack.seen = descendants(stack.popen.pid)
        yield stack
    finally:
        stack.stop()


def _exited(stack: Stack) -> bool:
    if stack.popen is not None and stack.popen.poll() is not None:
        raise AssertionError(f"make run exited:\n{stack.log.read_text()}")
    return False


def _passing(stack: Stack) -> int:
    status, _, body = stack.send(doc.parse_curl("curl localhost:9090/_gateway/routes", ""))
    return sum(s["passing"] for s in json.loads(body)["services"]) if status == 200 else 0


def walkthrough() -> list[doc.Curl]:
    commands = doc.curl_commands((doc.ROOT / "README.md").read_text())
    return [c for c in commands if c.section in SECTIONS]


def test_make_run_says_it_uses_the_bundled_registry(stack: Stack) -> None:
    log = stack.log.read_text()
    assert "bundled" in log and str(stack.registry_port) in log, log


def test_every_walkthrough_command_answers_as_the_readme_shows(stack: Stack) -> None:
    commands = walkthrough()
    assert len(commands) >= 10, [c.command for c in commands]
    wrong = []
    for command in commands:
        status, headers, body = stack.send(command)
        problems = []
        if status != command.expected_status:
            problems.append(f"status {status}, README shows {command.expected_status}")
        missing = [h for h in command.expected_headers if h not in headers]
        if missing:
            problems.append(f"headers missing: {missing}")
        expected = command.expected_json
        if expected is not None:
            try:
                got = json.loads(body)
            except ValueError:
                got = body.decode(errors="replace")
            if doc.json_shape(got) != doc.json_shape(expected):
                problems.append(f"JSON differs: got {got!r}")
        if problems:
            wrong.append(f"$ {command.command}\n  " + "\n  ".join(problems))
    assert not wrong, "\n".join(wrong)
