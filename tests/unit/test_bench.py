"""The pure helpers of `make bench`: wrk's report, /proc parsing, CPU sums and the summary."""

from __future__ import annotations

import math

import pytest

from scripts.benchlib import (
    Result,
    Row,
    SlowResult,
    descendants,
    head_status,
    idle_line,
    parse_stat,
    parse_vmrss_kib,
    parse_wrk,
    ratio,
    summary,
    table,
    ticks_spent,
)

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8080/catalog/items/apple
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.01ms    2.10ms  40.00ms   90.00%
    Req/Sec     1.00k   100.00     1.20k    70.00%
  Latency Distribution
     50%    3.50ms
     75%    4.50ms
     90%    6.00ms
     99%    1.20s
  20012 requests in 10.01s, 5.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:   1999.20
Transfer/sec:    512.00KB
"""

WRK_NO_ANSWER = """\
  Latency Distribution
     50%    0.00us
     99%    0.00us
  0 requests in 2.01s, 0.00B read
  Socket errors: connect 8, read 0, write 0, timeout 0
Requests/sec:      0.00
"""

# Field 2 holds spaces and a ')', as a process may name itself; utime 700, stime 300.
STAT = "4242 (gunicorn: worker [x) y]) S 4200 4242 4242 0 -1 4194560 5000 0 0 0 700 300 0 0 20 0 9 0 100 0 0"


def slow(sent: int, latencies: tuple[float, ...]) -> SlowResult:
    return SlowResult(sent, latencies, slow_peak=0, slow_connects=0, slow_answers={})


def test_parse_wrk_reads_rate_latencies_errors_and_request_count() -> None:
    assert parse_wrk(WRK_OUTPUT) == Result(
        rps=1999.2, p50=3.5, p99=1200.0, errors=9, requests=20012
    )


def test_parse_wrk_without_answers_gives_zero_rate_and_unknown_latencies() -> None:
    result = parse_wrk(WRK_NO_ANSWER)
    assert (result.rps, result.requests, result.errors) == (0.0, 0, 8)
    assert math.isnan(result.p50) and math.isnan(result.p99)


def test_parse_stat_finds_ppid_and_cpu_after_a_name_with_spaces_and_parens() -> None:
    stat = parse_stat(STAT)
    assert (stat.pid, stat.ppid, stat.cpu_ticks) == (4242, 4200, 1000)


@pytest.mark.parametrize(
    ("status", "kib"),
    [
        ("Name:\tnginx\nVmPeak:\t   20000 kB\nVmRSS:\t    8192 kB\nThreads:\t1\n", 8192),
        ("Name:\tkthreadd\nThreads:\t1\n", 0),
    ],
)
def test_parse_vmrss_reads_kib_or_zero_without_memory(status: str, kib: int) -> None:
    assert parse_vmrss_kib(status) == kib


def test_descendants_are_the_root_its_children_and_theirs_but_no_other_process() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 10, 13: 12, 20: 1, 21: 20}
    assert descendants(10, parents) == {10, 11, 12, 13}
    assert descendants(99, parents) == {99}


def test_ticks_spent_counts_growth_and_new_processes_from_zero() -> None:
    before = {10: 100, 11: 50, 12: 7}
    after = {10: 130, 11: 50, 13: 5}  # 12 exited, 13 was born
    assert ticks_spent(before, after) == 30 + 0 + 5


def test_head_status_reads_status_and_lowercased_headers() -> None:
    head = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
    assert head_status(head) == (408, {"content-length": "12", "connection": "close"})


def test_head_status_rejects_what_is_not_an_http_status_line() -> None:
    with pytest.raises(ValueError, match="not an HTTP"):
        head_status(b"SSH-2.0-OpenSSH\r\n\r\n")


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (3.0, 2.0, 1.5),
        (3.0, 0.0, None),
        (None, 2.0, None),
        (3.0, None, None),
        (1.0, math.nan, None),
        (math.nan, 2.0, None),
    ],
)
def test_ratio_is_none_when_a_side_is_unknown_or_zero(
    numerator: float | None, denominator: float | None, expected: float | None
) -> None:
    assert ratio(numerator, denominator) == expected


def test_summary_is_three_fixed_lines_in_order() -> None:
    lines = summary(slow(200, (1.0, 2.0, 30.0)), slow(200, (0.5,) * 200), 2.345, 0.9)
    assert lines == [
        "slow clients: gateway ok 3 of 200 (p50 2.0 ms), nginx ok 200 of 200 (p50 0.5 ms)",
        "gateway/nginx cpu per request: 2.35",
        "gateway/nginx throughput ratio: 0.90",
    ]


def test_summary_says_n_a_for_what_was_not_measured() -> None:
    lines = summary(slow(200, ()), slow(0, ()), None, None)
    assert lines == [
        "slow clients: gateway ok 0 of 200 (p50 n/a ms), nginx ok 0 of 0 (p50 n/a ms)",
        "gateway/nginx cpu per request: n/a",
        "gateway/nginx throughput ratio: n/a",
    ]


def test_table_shows_cpu_rss_and_throughput_relative_to_nginx() -> None:
    nginx = Row("nginx", Result(2000.0, 1.0, 3.0, 0, 20000), cpu_us=62.4, rss_mib=20.2)
    direct = Row("direct", Result(4000.0, 0.5, 2.0, 0, 40000))
    text = table([direct, nginx], base_rps=2000.0)
    assert text.splitlines()[2:] == [
        "| direct | 4,000 | 0.50 | 2.00 | 2.00 | n/a | n/a |",
        "| nginx | 2,000 | 1.00 | 3.00 | 1.00 | 62 | 20 |",
    ]


def test_idle_line_compares_req_s_and_rss_with_the_row_without_idle_connections() -> None:
    without = Row("gateway", Result(2000.0, 1.0, 3.0, 0, 20000), cpu_us=100.0, rss_mib=60.0)
    with_idle = Row("gateway + 5,000 idle", Result(1900.0, 1.1, 3.5, 0, 19000), rss_mib=75.4)
    assert idle_line(5000, 5000, 4999, with_idle, without) == (
        "idle: 5,000 of 5,000 keep-alive connections opened to the gateway (one 2xx each), "
        "4,999 still open after the run; gateway req/s with them 1,900 vs 2,000 without (0.95), "
        "RSS 75 MiB vs 60 MiB"
    )
