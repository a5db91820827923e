"""`make bench`: the same wrk load against the backends directly, nginx, and the gateway.

Starts the Consul double, two catalog instances, nginx (a foreground process with its own
prefix in a temporary folder) and the gateway with every feature on, all on 127.0.0.1. Then, in
one run:

- **wrk rows.** Each target gets a short warm-up, then ``wrk -t2 -c8 -d<BENCH_DURATION>s
  --latency``. Over exactly that run the bench reads ``/proc/<pid>/stat`` (utime + stime) of
  every process of the proxy (master and workers) and divides by the requests wrk completed:
  the "CPU µs/req" column. For "direct" it is the two backends' own CPU. "RSS MiB" is the
  peak summed VmRSS of those processes during the run.
- **Idle row.** ``BENCH_IDLE`` (5,000) keep-alive connections to the gateway each get one
  answer and then stay open, idle, while wrk runs the same load again. The gateway runs with
  ``GATEWAY_KEEPALIVE_TIMEOUT=180s`` so that none is closed for idleness during the row.
- **Slow-client rows.** ``BENCH_SLOW_CLIENTS`` (1,000) connections to a proxy each send a
  request line and then one header byte a second, never ending the headers. A slow client that
  is answered (408) or closed connects again, so the pressure lasts the whole window.
  Meanwhile 200 ordinary GETs go out on new connections, 50 ms apart, each with a 2 s timeout.
  About 20 s per proxy, nginx first, then the gateway.

Prints a table and ends with three summary lines: slow clients, then the gateway/nginx CPU per
request, then the throughput ratio. A benchmark is never an assertion: it exits 0 whatever it
measures.

**Open files.** The idle row holds 5,000 sockets in this process and in a gateway worker, so
the bench raises its soft ``RLIMIT_NOFILE`` to the hard limit at start; the processes it starts
inherit it, and nginx gets ``worker_rlimit_nofile`` to match. If the hard limit is below what a
row needs (about 5,500 descriptors), the row opens fewer connections and the bench prints a
note; raise the hard limit (``ulimit -Hn`` as root, or ``LimitNOFILE=`` in systemd) to measure
the full count.

Run from the repository root: ``PYTHONPATH=. .venv/bin/python scripts/bench.py``. Environment:
``BENCH_DURATION`` (10 s), ``BENCH_WARMUP`` (2 s), ``BENCH_IDLE`` (5000),
``BENCH_SLOW_CLIENTS`` (1000), and ``WEB_CONCURRENCY`` / ``WEB_THREADS`` for the gateway only.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from scripts.benchclients import slow_clients, with_idle_connections
from scripts.benchlib import (
    TICK_SECONDS,
    Row,
    SlowResult,
    idle_line,
    parse_wrk,
    ratio,
    summary,
    table,
    ticks_spent,
    tree_rss_kib,
    tree_ticks,
)
from scripts.benchstack import GATEWAY_PATH, WRK_FLAGS, Stack, Target, start_stack

IDLE_PATH = "/catalog/health"
PROBES, PROBE_SPACING, PROBE_TIMEOUT = 200, 0.05, 2.0
SPARE_FDS = 512  # wrk, the stack's own sockets, log files


def int_from_env(name: str, default: int, lo: int, hi: int) -> int:
    """A whole number (``10``, or ``10s`` for seconds) from *name*, bounded to [lo, hi]."""
    raw = os.environ.get(name, "").strip().removesuffix("s") or str(default)
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        sys.exit(f"{name} must be a whole number from {lo} to {hi}, got {raw!r}")
    return int(raw)


def raise_open_files(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return how many sockets a row may use."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else max(soft, wanted + SPARE_FDS)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    if limit < wanted + SPARE_FDS:
        print(
            f"note: the open-files hard limit is {limit}, below the {wanted + SPARE_FDS} the "
            f"idle row needs; it opens {max(0, limit - SPARE_FDS)} connections instead "
            "(raise it with `ulimit -Hn` as root)",
            file=sys.stderr,
        )
    return max(0, limit - SPARE_FDS)


def run_wrk(name: str, target: Target, seconds: int) -> Row:
    """One wrk run; the target's CPU over exactly that run, and its peak RSS while it lasts."""
    extra = ["-s", str(target.script)] if target.script else []
    cmd = ["wrk", *WRK_FLAGS, f"-d{seconds}s", *extra, target.url]
    before = tree_ticks(target.pids)
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_kib, deadline = 0, time.monotonic() + seconds + 30
    try:
        while time.monotonic() < deadline:
            peak_kib = max(peak_kib, tree_rss_kib(target.pids))
            try:
                wrk.wait(0.5)  # returns the moment wrk exits, so "after" is read right then
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        if wrk.poll() is None:  # a hung wrk is killed after a bounded wait
            wrk.kill()
            wrk.wait()
    after = tree_ticks(target.pids)
    output = wrk.stdout.read() if wrk.stdout else ""
    result = parse_wrk(output)
    if result.requests == 0:
        print(f"warning: {name}: wrk completed no request:\n{output}", file=sys.stderr)
    cpu_us = ratio(ticks_spent(before, after) * TICK_SECONDS * 1e6, result.requests)
    return Row(name, result, cpu_us, peak_kib / 1024 if peak_kib else None)


def measure(name: str, target: Target, seconds: int, warmup: int) -> Row:
    """Warm *target* up, then measure it; progress goes to stderr."""
    print(f"{name}: {warmup}s warm-up, {seconds}s run ...", file=sys.stderr, flush=True)
    if warmup:
        run_wrk(name, target, warmup)
    return run_wrk(name, target, seconds)


def idle_row(stack: Stack, count: int, seconds: int, warmup: int) -> tuple[Row, int, int]:
    """The gateway measured again while *count* idle keep-alive connections are open to it."""
    name = f"gateway + {count:,} idle"
    print(f"{name}: opening the connections ...", file=sys.stderr, flush=True)
    gateway = stack.targets["gateway"]

    async def run() -> Row:
        return await asyncio.to_thread(measure, name, gateway, seconds, warmup)

    coro = with_idle_connections(gateway.port, IDLE_PATH, count, run)
    row, opened, still_open = asyncio.run(coro)
    if opened < count:  # the row is named for what it measured
        row = replace(row, name=f"gateway + {opened:,} idle (of {count:,} tried)")
    return row, opened, still_open


def slow_row(name: str, target: Target, clients: int) -> SlowResult:
    """Probes to *target* while *clients* slow clients hold connections to it."""
    print(f"slow clients: {clients:,} against {name} ...", file=sys.stderr, flush=True)
    coro = slow_clients(target.port, GATEWAY_PATH, clients, PROBES, PROBE_SPACING, PROBE_TIMEOUT)
    return asyncio.run(coro)


def slow_table(results: dict[str, SlowResult]) -> str:
    """What the probes got, and what the proxy did with the slow connections."""
    out = [
        "| proxy | probes ok | p50 ms | slow conns open (peak) | slow connects | slow clients got |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, s in results.items():
        got = ", ".join(f"{k}: {v:,}" for k, v in sorted(s.slow_answers.items())) or "nothing"
        p50 = "n/a" if not s.ok else f"{s.p50:.1f}"
        out.append(
            f"| {name} | {s.ok} of {s.sent} | {p50} | {s.slow_peak:,} | {s.slow_connects:,} "
            f"| {got} |"
        )
    return "\n".join(out)


def main() -> None:
    seconds = int_from_env("BENCH_DURATION", 10, 1, 120)
    warmup = int_from_env("BENCH_WARMUP", 2, 0, 30)
    wanted_idle = int_from_env("BENCH_IDLE", 5000, 0, 100_000)
    wanted_slow = int_from_env("BENCH_SLOW_CLIENTS", 1000, 0, 100_000)
    sockets = raise_open_files(max(wanted_idle, wanted_slow))
    idle, slow = min(wanted_idle, sockets), min(wanted_slow, sockets)
    # SIGTERM unwinds like Ctrl-C, so the ExitStack stops everything that was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        root.chmod(0o755)  # nginx workers run as an unprivileged user when started as root
        started = start_stack(root, stack, nofile=sockets + SPARE_FDS)
        rows = [measure(name, t, seconds, warmup) for name, t in started.targets.items()]
        idle_result, opened, still_open = idle_row(started, idle, seconds, warmup)
        slow_results = {
            name: slow_row(name, started.targets[name], slow) for name in ("nginx", "gateway")
        }
        died = started.exited()  # read before the stack stops everything

    by_name = {row.name: row for row in rows}
    nginx, gateway = by_name["nginx"], by_name["gateway"]
    print(
        f"wrk {' '.join(WRK_FLAGS)} -d{seconds}s after a {warmup}s warm-up, per target; "
        "direct = one wrk whose 2 threads (4 connections each) go one to each backend"
    )
    print(f"gateway: {started.gateway_knobs}; every feature on")
    print(f"open files: soft limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")
    print("load average before start: {:.2f} {:.2f} {:.2f}".format(*load_before))
    print(
        "CPU µs/req: utime+stime of every process of the target (master and workers) over the "
        "wrk run, per completed request; for direct, the backends' CPU. "
        "RSS MiB: their summed VmRSS, peak during the run."
    )
    for message in died:
        print(f"warning: {message.splitlines()[0]}")
        print(message, file=sys.stderr)
    for row in [*rows, idle_result]:
        if row.result.errors:
            print(f"warning: {row.name} had {row.result.errors} non-2xx responses or socket errors")
    print()
    print(table([*rows, idle_result], nginx.result.rps))
    print()
    print(idle_line(opened, idle, still_open, with_idle=idle_result, without=gateway))
    print()
    print(
        f"slow clients: {slow:,} connections per proxy, each a request line then one header "
        f"byte a second (reconnecting when answered or closed); meanwhile {PROBES} GETs on new "
        f"connections {PROBE_SPACING * 1e3:.0f} ms apart, {PROBE_TIMEOUT:.0f} s timeout each"
    )
    print(slow_table(slow_results))
    print()
    p99 = ratio(gateway.result.p99, nginx.result.p99)
    print(f"gateway/nginx p99 ratio: {'n/a' if p99 is None else f'{p99:.2f}'}")
    cpu = ratio(gateway.cpu_us, nginx.cpu_us)
    throughput = ratio(gateway.result.rps, nginx.result.rps)
    for line in summary(slow_results["gateway"], slow_results["nginx"], cpu, throughput):
        print(line)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("bench: interrupted; every process it started has been stopped")
