"""Pure helpers of `make bench`, and the few reads of /proc it needs.

Parsing (wrk's report, ``/proc/<pid>/stat``, ``/proc/<pid>/status``, an HTTP response head)
and formatting (the table, the closing summary lines) are pure functions, unit-tested in
tests/unit/test_bench.py. The /proc readers at the bottom are thin I/O around them.
"""

from __future__ import annotations

import math
import os
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
NAN = float("nan")


@dataclass(frozen=True)
class Result:
    """What one wrk run measured; latencies in milliseconds (NaN when wrk saw no answer)."""

    rps: float
    p50: float
    p99: float
    errors: int
    requests: int


@dataclass(frozen=True)
class Row:
    """One line of the table: a wrk result, the CPU it cost per request, the peak RSS."""

    name: str
    result: Result
    cpu_us: float | None = None
    rss_mib: float | None = None


@dataclass(frozen=True)
class SlowResult:
    """Ordinary requests sent while slow clients held connections to one proxy."""

    sent: int
    latencies_ms: tuple[float, ...]  # of the requests answered 2xx in time
    slow_peak: int  # most slow connections open at once
    slow_connects: int  # slow connections opened, reconnects included
    slow_answers: Mapping[str, int]  # what the proxy did to slow clients: "408", "closed", ...

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else NAN


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the bench uses."""

    pid: int
    ppid: int
    cpu_ticks: int  # utime + stime, in clock ticks


def parse_wrk(output: str) -> Result:
    """Requests/sec, the 50% and 99% latencies, errors and requests from ``wrk --latency``."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    pct = {
        p: float(n) * _UNIT[unit]
        for p, n, unit in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(\w+)", output, re.M)
    }
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    count = int(errors.group(1)) if errors else 0
    count += sum(int(n) for n in sockets.groups()) if sockets else 0
    requests = int(total.group(1)) if total else 0
    if not requests:
        pct = {}  # wrk prints 0.00us percentiles for a run that got no answer
    return Result(
        rps=float(rps.group(1)) if rps else 0.0,
        p50=pct.get("50", NAN),
        p99=pct.get("99", NAN),
        errors=count,
        requests=requests,
    )


def parse_stat(text: str) -> ProcStat:
    """Parse one ``/proc/<pid>/stat`` line; the command name may hold spaces and ')'."""
    pid, _, rest = text.partition(" (")
    fields = rest.rpartition(")")[2].split()
    # After the name: state(3) ppid(4) ... utime(14) stime(15), numbered as in proc(5).
    return ProcStat(int(pid), int(fields[1]), int(fields[11]) + int(fields[12]))


def parse_vmrss_kib(status: str) -> int:
    """VmRSS in KiB from ``/proc/<pid>/status``; 0 for a kernel thread or a zombie."""
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) if found else 0


def descendants(root: int, parents: Mapping[int, int]) -> set[int]:
    """*root* and every process below it, from a pid -> ppid map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def ticks_spent(before: Mapping[int, int], after: Mapping[int, int]) -> int:
    """CPU ticks used between two snapshots; a process born in between counts from zero.

    A process that exited in between is lost (its last ticks are unknown): the bench's proxies
    keep their workers for the whole run, so the loss is a worker crash, which the log shows.
    """
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items())


def head_status(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the (lowercased, last-wins) headers of an HTTP/1.x response head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is unknown or the denominator is 0."""
    if numerator is None or denominator is None or not denominator:
        return None
    value = numerator / denominator
    return None if math.isnan(value) else value


def table(rows: Iterable[Row], base_rps: float) -> str:
    """The markdown table of the wrk rows, with throughput relative to *base_rps* (nginx)."""
    out = [
        "| target | req/s | p50 ms | p99 ms | vs nginx | CPU µs/req | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        r = row.result
        out.append(
            f"| {row.name} | {r.rps:,.0f} | {_num(r.p50, '.2f')} | {_num(r.p99, '.2f')} "
            f"| {_num(ratio(r.rps, base_rps), '.2f')} | {_num(row.cpu_us, ',.0f')} "
            f"| {_num(row.rss_mib, ',.0f')} |"
        )
    return "\n".join(out)


def idle_line(opened: int, tried: int, still_open: int, with_idle: Row, without: Row) -> str:
    """The idle row in words: connections held, req/s and RSS against the row without them."""
    return (
        f"idle: {opened:,} of {tried:,} keep-alive connections opened to the gateway (one 2xx "
        f"each), {still_open:,} still open after the run; gateway req/s with them "
        f"{with_idle.result.rps:,.0f} vs {without.result.rps:,.0f} without "
        f"({_num(ratio(with_idle.result.rps, without.result.rps), '.2f')}), "
        f"RSS {_num(with_idle.rss_mib, ',.0f')} MiB vs {_num(without.rss_mib, ',.0f')} MiB"
    )


def summary(
    slow_gateway: SlowResult, slow_nginx: SlowResult, cpu: float | None, throughput: float | None
) -> list[str]:
    """The three lines `make bench` ends with, in their fixed order."""
    g, n = slow_gateway, slow_nginx
    return [
        f"slow clients: gateway ok {g.ok} of {g.sent} (p50 {_num(g.p50, '.1f')} ms), "
        f"nginx ok {n.ok} of {n.sent} (p50 {_num(n.p50, '.1f')} ms)",
        f"gateway/nginx cpu per request: {_num(cpu, '.2f')}",
        f"gateway/nginx throughput ratio: {_num(throughput, '.2f')}",
    ]


def proc_table(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process's stat; processes that exit while being read are skipped."""
    table_: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                stat = parse_stat((entry / "stat").read_text())
            except (OSError, IndexError, ValueError):
                continue
            table_[stat.pid] = stat
    return table_


def tree_ticks(roots: Iterable[int]) -> dict[int, int]:
    """CPU ticks of every process under each of *roots* (master and workers), by pid."""
    stats = proc_table()
    parents = {pid: s.ppid for pid, s in stats.items()}
    pids = set().union(*(descendants(root, parents) for root in roots))
    return {pid: stats[pid].cpu_ticks for pid in pids if pid in stats}


def tree_rss_kib(roots: Iterable[int]) -> int:
    """The summed VmRSS of every process under each of *roots*."""
    total = 0
    for pid in tree_ticks(roots):
        try:
            total += parse_vmrss_kib(Path(f"/proc/{pid}/status").read_text())
        except OSError:
            continue
    return total


TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")
