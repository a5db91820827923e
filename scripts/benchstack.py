"""The processes `make bench` measures: two catalog backends, nginx and the gateway, on loopback.

``start_stack`` starts them all and pushes each one's stop on the caller's ExitStack, so they
are stopped however the bench ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

from registry.launcher import free_port, run_consul_double
from tests.integration.harness import (
    Process,
    gateway_env,
    passing_ids,
    service_env,
    wait_for,
)

WRK_FLAGS = ["-t2", "-c8", "--latency"]
CATALOG_CONF = "services/gunicorn.conf.py"  # SERVICE_NAME=catalog picks the app
# The backends keep their defaults whatever the caller's environment says, so a run with
# WEB_THREADS=... set changes the gateway alone.
BACKEND_ENV = {"WEB_CONCURRENCY": "1", "WEB_THREADS": "8", "ACCESS_LOG": ""}
# Idle keep-alive connections must outlive the idle row (a warm-up and a run of up to 2 min).
# X-Upstream-Instance (a debugging header, off by default) tells which backend answered. The
# rate and in-flight limits are on, set far above the load, so their cost is measured too.
GATEWAY_BENCH_ENV = {
    "ACCESS_LOG": "",
    "GATEWAY_KEEPALIVE_TIMEOUT": "180s",
    "GATEWAY_DEBUG_HEADERS": "true",
    "GATEWAY_RATE_LIMIT": "100000",
    "GATEWAY_MAX_INFLIGHT": "100000",
}
DIRECT_PATH, GATEWAY_PATH = "/items/apple", "/catalog/items/apple"
# wrk calls setup() once per thread before the run, so each thread (and its 4 connections)
# sends to one backend: the same split the proxies make, with one latency histogram.
SPLIT_LUA = """\
local backends = {%s}
local n = 0
function setup(thread)
  thread.addr = wrk.lookup("127.0.0.1", backends[n %% #backends + 1])[1]
  n = n + 1
end
"""
# worker_connections and worker_rlimit_nofile let one worker hold every slow client; the
# listen backlog takes a thousand connects at once without dropping SYNs.
NGINX_CONF = """\
daemon off;
worker_processes 2;
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream catalog {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /catalog/ {{
            proxy_pass http://catalog/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The headers the gateway adds too, so both do the same work per request.
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Prefix /catalog;
            proxy_set_header X-Request-ID $request_id;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Target:
    """A URL to load, the wrk script if any, its port, and the pids whose trees it costs."""

    url: str
    port: int
    pids: tuple[int, ...]
    script: Path | None = None


@dataclass(frozen=True)
class Stack:
    """What was started: the targets in table order, and the gateway's sizing as text."""

    targets: dict[str, Target]
    gateway_knobs: str
    logs: dict[str, tuple[subprocess.Popen[bytes], Path]]  # the proxies, to tell if one died

    def exited(self) -> list[str]:
        """A line, with the log's tail, for each proxy that is no longer running."""
        return [
            f"{name} exited with {popen.returncode} during the bench; its log ends:\n"
            + log.read_text(errors="replace")[-3000:]
            for name, (popen, log) in self.logs.items()
            if popen.poll() is not None
        ]


def start_nginx(
    prefix: Path, port: int, backends: list[int], nofile: int
) -> subprocess.Popen[bytes]:
    """nginx in the foreground with its own config, proxying /catalog/ to *backends*."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in backends)
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            prefix=prefix,
            servers=servers,
            port=port,
            nofile=nofile,
            connections=max(1024, nofile // 2),
        )
    )
    with (prefix / "nginx.log").open("ab") as log:
        return subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C reaches this script, which then stops nginx itself
        )


def stop_nginx(nginx: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGTERM), then SIGKILL to the whole group if it lingers."""
    if nginx.poll() is None:
        nginx.terminate()
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(nginx.pid, signal.SIGKILL)
            nginx.wait(5)


def upstream_ids(url: str) -> set[str]:
    """The instances that answered 20 fresh connections to the gateway (every one a 200)."""
    ids = set()
    for _ in range(20):
        response = requests.get(url, timeout=2)
        response.raise_for_status()
        ids.add(response.headers["X-Upstream-Instance"])
    return ids


def gateway_knobs() -> dict[str, str]:
    """Bench settings, then the caller's gunicorn sizing and logging (``ACCESS_LOG=true make
    bench`` measures the access log's cost; nginx's stays off), if set."""
    caller = ("WEB_CONCURRENCY", "WEB_THREADS", "ACCESS_LOG", "LOG_FORMAT")
    return {**GATEWAY_BENCH_ENV, **{k: os.environ[k] for k in caller if k in os.environ}}


def start_stack(root: Path, stack: ExitStack, nofile: int) -> Stack:
    """Start everything on loopback, each stop pushed on *stack*; return the targets."""
    consul = stack.enter_context(run_consul_double())
    ports = [free_port(), free_port()]
    backends = []
    for port in ports:
        env = service_env("catalog", port, consul.addr, **BACKEND_ENV)
        backend = Process(f"catalog-{port}", CATALOG_CONF, env, port, root)
        stack.callback(backend.start().stop)
        backends.append(backend)
        backend.wait_http("/health")
    wait_for(lambda: len(passing_ids(consul.addr, "catalog")) == 2, 30, "2 passing catalogs")

    nginx_port, gateway_port = free_port(), free_port()
    nginx = start_nginx(root, nginx_port, ports, nofile)
    stack.callback(stop_nginx, nginx)
    env = gateway_env(gateway_port, consul.addr, **gateway_knobs())
    gateway = Process("gateway", "gateway/gunicorn.conf.py", env, gateway_port, root)
    stack.callback(gateway.start().stop)
    gateway_popen = gateway.popen
    assert gateway_popen is not None  # start() sets it

    nginx_url = f"http://127.0.0.1:{nginx_port}{GATEWAY_PATH}"

    def nginx_ready() -> bool:
        if nginx.poll() is not None:
            raise RuntimeError(f"nginx exited:\n{(root / 'error.log').read_text()}")
        return requests.get(nginx_url, timeout=2).ok

    wait_for(nginx_ready, 15, "nginx to proxy to catalog")
    gateway.wait_http("/_gateway/health", timeout=30)
    both = passing_ids(consul.addr, "catalog")
    gateway_url = gateway.url + GATEWAY_PATH
    wait_for(lambda: upstream_ids(gateway_url) == both, 30, "the gateway to route to both")

    split = root / "split.lua"
    split.write_text(SPLIT_LUA % ", ".join(f'"{p}"' for p in ports))
    backend_pids = tuple(b.popen.pid for b in backends if b.popen)
    knobs = {"WEB_CONCURRENCY": "2", **gateway_knobs()}
    if not knobs["ACCESS_LOG"]:
        del knobs["ACCESS_LOG"]
    return Stack(
        targets={
            "direct": Target(f"http://127.0.0.1:{ports[0]}{DIRECT_PATH}", 0, backend_pids, split),
            "nginx": Target(nginx_url, nginx_port, (nginx.pid,)),
            "gateway": Target(gateway_url, gateway_port, (gateway_popen.pid,)),
        },
        gateway_knobs=" ".join(f"{k}={v}" for k, v in knobs.items()),
        logs={"nginx": (nginx, root / "error.log"), "gateway": (gateway_popen, gateway.log_path)},
    )
