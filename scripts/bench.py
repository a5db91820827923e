"""`make bench`: the same wrk load against the backends directly, nginx, and the gateway.

Starts the Consul double, two catalog instances, nginx (a foreground process with its own
prefix in a temporary folder) and the gateway with every feature on, all on 127.0.0.1. Each
target gets a short warm-up, then ``wrk -t2 -c8 -d<BENCH_DURATION>s --latency``. Prints a table
and the gateway/nginx ratios. A benchmark is never an assertion: it exits 0 whatever it measures.

Run from the repository root: ``PYTHONPATH=. .venv/bin/python scripts/bench.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.consul_double.launcher import free_port, run_consul_double
from tests.integration.harness import (
    Process,
    gateway_env,
    passing_ids,
    service_env,
    wait_for,
)

WRK_FLAGS = ["-t2", "-c8", "--latency"]
CATALOG_CONF = "services/catalog/gunicorn.conf.py"
# The backends keep their defaults whatever the caller's environment says, so a run with
# WEB_THREADS=... set changes the gateway alone.
BACKEND_ENV = {"WEB_CONCURRENCY": "1", "WEB_THREADS": "8", "ACCESS_LOG": ""}
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
NGINX_CONF = """\
daemon off;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
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
        listen 127.0.0.1:{port};
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
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class Result:
    """What one wrk run measured; latencies in milliseconds."""

    rps: float
    p50: float
    p99: float
    errors: int


def seconds_from_env(name: str, default: int, lo: int, hi: int) -> int:
    """A whole number of seconds (``10`` or ``10s``) from *name*, bounded to [lo, hi]."""
    raw = os.environ.get(name, "").strip().removesuffix("s") or str(default)
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        sys.exit(f"{name} must be a whole number of seconds from {lo} to {hi}, got {raw!r}")
    return int(raw)


def parse_wrk(output: str) -> Result:
    """Requests/sec, the 50% and 99% latencies, and the error count from ``wrk --latency``."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    pct = {
        p: (float(n), unit)
        for p, n, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(\w+)", output, re.M)
    }
    if rps is None or set(pct) != {"50", "99"}:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    count = int(errors.group(1)) if errors else 0
    count += sum(int(n) for n in sockets.groups()) if sockets else 0
    p50, p99 = (pct[p][0] * _UNIT[pct[p][1]] for p in ("50", "99"))
    return Result(float(rps.group(1)), p50, p99, count)


def wrk(url: str, seconds: int, script: Path | None = None) -> Result:
    """One wrk run against *url*; a hung wrk is killed after a bounded wait."""
    extra = ["-s", str(script)] if script else []
    done = subprocess.run(
        ["wrk", *WRK_FLAGS, f"-d{seconds}s", *extra, url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    return parse_wrk(done.stdout)


def start_nginx(prefix: Path, port: int, backends: list[int]) -> subprocess.Popen[bytes]:
    """nginx in the foreground with its own config, proxying /catalog/ to *backends*."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in backends)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, servers=servers, port=port))
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
    """The gateway's gunicorn sizing from the caller's environment, if set; access log off."""
    sizing = {k: os.environ[k] for k in ("WEB_CONCURRENCY", "WEB_THREADS") if k in os.environ}
    return {**sizing, "ACCESS_LOG": ""}


def start_stack(root: Path, stack: ExitStack) -> dict[str, tuple[str, Path | None]]:
    """Start everything on loopback, each stop pushed on *stack*; return the targets."""
    consul = stack.enter_context(run_consul_double())
    ports = [free_port(), free_port()]
    for port in ports:
        env = service_env("catalog", port, consul.addr, **BACKEND_ENV)
        backend = Process(f"catalog-{port}", CATALOG_CONF, env, port, root)
        stack.callback(backend.start().stop)
        backend.wait_http("/health")
    wait_for(lambda: len(passing_ids(consul.addr, "catalog")) == 2, 30, "2 passing catalogs")

    nginx_port, gateway_port = free_port(), free_port()
    nginx = start_nginx(root, nginx_port, ports)
    stack.callback(stop_nginx, nginx)
    gateway_conf = "gateway/gunicorn.conf.py"
    gateway = Process(
        "gateway",
        gateway_conf,
        gateway_env(gateway_port, consul.addr, **gateway_knobs()),
        gateway_port,
        root,
    )
    stack.callback(gateway.start().stop)

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
    return {
        "direct": (f"http://127.0.0.1:{ports[0]}{DIRECT_PATH}", split),
        "nginx": (nginx_url, None),
        "gateway": (gateway_url, None),
    }


def measure(name: str, url: str, seconds: int, warmup: int, script: Path | None) -> Result:
    """Warm *url* up, then measure it; progress goes to stderr."""
    print(f"{name}: {warmup}s warm-up, {seconds}s run ...", file=sys.stderr, flush=True)
    if warmup:
        wrk(url, warmup, script)
    return wrk(url, seconds, script)


def table(results: dict[str, Result]) -> str:
    """The markdown table, with throughput relative to nginx."""
    base = results["nginx"].rps
    rows = ["| target | req/s | p50 ms | p99 ms | vs nginx |", "|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r.rps:,.0f} | {r.p50:.2f} | {r.p99:.2f} | {r.rps / base:.2f} |")
    return "\n".join(rows)


def main() -> None:
    seconds = seconds_from_env("BENCH_DURATION", 10, 1, 120)
    warmup = seconds_from_env("BENCH_WARMUP", 2, 0, 30)
    # SIGTERM unwinds like Ctrl-C, so the ExitStack stops everything that was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        root.chmod(0o755)  # nginx workers run as an unprivileged user when started as root
        targets = start_stack(root, stack)
        results = {
            name: measure(name, url, seconds, warmup, script)
            for name, (url, script) in targets.items()
        }

    print(
        f"wrk {' '.join(WRK_FLAGS)} -d{seconds}s after a {warmup}s warm-up, per target; "
        "direct = one wrk whose 2 threads (4 connections each) go one to each backend"
    )
    knobs = gateway_knobs()
    workers, threads = knobs.get("WEB_CONCURRENCY", "2"), knobs.get("WEB_THREADS", "default")
    print(f"gateway: WEB_CONCURRENCY={workers} WEB_THREADS={threads}; every feature on")
    print("load average before start: {:.2f} {:.2f} {:.2f}".format(*load_before))
    for name, r in results.items():
        if r.errors:
            print(f"warning: {name} had {r.errors} non-2xx responses or socket errors")
    print()
    print(table(results))
    print()
    print(f"gateway/nginx p99 ratio: {results['gateway'].p99 / results['nginx'].p99:.2f}")
    print(f"gateway/nginx throughput ratio: {results['gateway'].rps / results['nginx'].rps:.2f}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("bench: interrupted; every process it started has been stopped")
