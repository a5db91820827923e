"""Adding up the workers' snapshots (gateway/admin/merge.py) and reading them from a folder."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from discovery.model import Service
from discovery.settings import ConsulSettings
from discovery.watcher import CatalogWatcher
from discovery.window import WINDOW_SECONDS, MinuteCounter
from gateway.admin.explain import explain
from gateway.admin.merge import merge, merge_budgets, merge_instance, series
from gateway.admin.share import MAX_AGE, StateShare, forget, snapshot
from gateway.admin.view import page_state
from gateway.proxy import Proxy
from gateway.settings import GatewaySettings
from tests.unit.inmemory import Upstreams, build, service

NOW = 1000.5  # second 1000 is the newest of the window
BUDGET = {
    "window_seconds": 10.0,
    "requests": 4.0,
    "retries": 1.0,
    "allowed": 10.8,
    "granted_total": 1,
    "denied_total": 0,
}


def entry(**given: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "in_flight": 0,
        "ewma": 0.005,
        "second": 1000,
        "attempts": [],
        "failures": [],
        "consecutive_failures": 0,
        "last_failure": "",
        "last_failure_at": 0.0,
        "ejections": 0,
        "ejection": None,
    }
    return {**base, **given}


def ejection(at: float, until: float, reason: str = "connect_refused") -> dict[str, Any]:
    return {"reason": reason, "failures": 1, "at": at, "until": until, "awaiting_consul": False}


def snap(pid: int, instances: dict[str, Any], last_sync: float | None = None) -> dict[str, Any]:
    return {
        "pid": pid,
        "at": NOW,
        "last_sync": last_sync,
        "retry_budget": BUDGET,
        "instances": instances,
    }


@pytest.mark.parametrize(
    ("counts", "second", "expected_tail", "total"),
    [
        ([], 1000, [0, 0, 0], 0),
        ([2, 1], 1000, [0, 1, 2], 3),  # newest first
        ([2, 1], 999, [1, 2, 0], 3),  # written a second ago: shifted by one
        ([0] * 59 + [5], 1000, [0, 0, 0], 5),  # the oldest second of the window
        ([0] * 59 + [5], 999, [0, 0, 0], 0),  # a second later, out of it
        ([7, 4], 1001, [0, 0, 4], 4),  # a second ahead of the reader: only what it has seen
    ],
)
def test_a_workers_counts_fill_the_minute_ending_now_by_absolute_second(
    counts: list[int], second: int, expected_tail: list[int], total: int
) -> None:
    out = series(counts, second, NOW)
    assert len(out) == WINDOW_SECONDS and out[-3:] == expected_tail and sum(out) == total


def test_a_counter_by_age_matches_its_series() -> None:
    counter = MinuteCounter()
    for at in (930.2, 960.5, 999.1, 999.9, 1000.3):
        counter.add(at)
    assert counter.by_age(NOW) == [1, 2] + [0] * 38 + [1]  # 930 is out; 960 is 40 s old
    assert series(counter.by_age(NOW), 1000, NOW) == counter.series(NOW)
    assert MinuteCounter().by_age(NOW) == []


def test_the_workers_windows_add_up_second_by_second() -> None:
    row = merge_instance(
        [
            (1, entry(attempts=[1, 2], failures=[1])),
            (2, entry(second=999, attempts=[4], failures=[0, 2])),
        ],
        NOW,
    )
    assert row["requests_per_second"][-3:] == [0, 6, 1]
    assert row["requests_last_minute"] == 7 and row["failures_last_minute"] == 3


@pytest.mark.parametrize(
    ("workers", "latency_ms"),
    [
        # (requests in the window, EWMA in seconds) per worker
        ([(3, 0.010), (1, 0.030)], 15.0),  # weighted by requests
        ([(0, 0.010), (2, 0.030)], 30.0),  # a worker that sent nothing weighs nothing
        ([(0, 0.010), (0, 0.030)], 20.0),  # none sent any: the plain mean
        ([], None),  # never talked to
    ],
)
def test_latency_is_the_request_weighted_mean_of_the_ewmas(
    workers: list[tuple[int, float]], latency_ms: float | None
) -> None:
    entries = [
        (pid, entry(ewma=ewma, attempts=[n] if n else [])) for pid, (n, ewma) in enumerate(workers)
    ]
    assert merge_instance(entries, NOW)["latency_ewma_ms"] == latency_ms


def test_in_flight_and_ejections_are_summed_streak_is_the_longest_failure_the_latest() -> None:
    row = merge_instance(
        [
            (1, entry(in_flight=2, consecutive_failures=1, last_failure="timeout",
                      last_failure_at=990.0, ejections=1)),
            (2, entry(in_flight=3, consecutive_failures=4, last_failure="status_503",
                      last_failure_at=995.5, ejections=2)),
        ],
        NOW,
    )  # fmt: skip
    assert row["in_flight"] == 5 and row["consecutive_failures"] == 4
    assert row["last_failure"] == {"reason": "status_503", "seconds_ago": 5.0}
    assert row["ejections_total"] == 3


@pytest.mark.parametrize(
    ("ejections", "ejected_by", "shown"),
    [
        ({}, 0, None),
        ({1: ejection(990.0, 1010.0)}, 1, 1),
        ({1: ejection(990.0, 1010.0), 2: ejection(995.0, 1030.0)}, 2, 2),  # lasts longest
        ({1: ejection(980.0, 990.0), 2: ejection(970.0, 985.0)}, 0, 1),  # both over: latest
        ({1: ejection(980.0, 990.0), 2: ejection(970.0, 1005.0)}, 1, 2),  # the active one
    ],
)
def test_ejections_are_listed_per_worker_and_counted_while_active(
    ejections: dict[int, dict[str, Any]], ejected_by: int, shown: int | None
) -> None:
    entries = [(pid, entry(ejections=1, ejection=ejections.get(pid))) for pid in (1, 2)]
    row = merge_instance(entries, NOW)
    assert row["ejected_by_workers"] == ejected_by
    assert [e["worker"] for e in row["ejections_by_worker"]] == sorted(ejections)
    assert (row["ejection"] or {}).get("worker") == shown


def test_budgets_are_summed_and_the_freshest_consul_read_wins() -> None:
    assert merge_budgets([BUDGET, BUDGET]) == {
        "window_seconds": 10.0,
        "requests": 8.0,
        "retries": 2.0,
        "allowed": 21.6,
        "granted_total": 2,
        "denied_total": 0,
    }
    merged = merge([snap(1, {}, last_sync=990.0), snap(2, {}, 998.5), snap(3, {})], NOW)
    assert merged["last_sync_age_seconds"] == 2.0


def test_merge_lists_each_workers_active_ejections() -> None:
    merged = merge(
        [
            snap(1, {"a": entry(ejections=1, ejection=ejection(990.0, 1010.0))}),
            snap(2, {"a": entry(ejections=1, ejection=ejection(980.0, 990.0)), "b": entry()}),
        ],
        NOW,
    )
    assert merged["ejected"] == [frozenset({"a"}), frozenset()]
    assert set(merged["instances"]) == {"a", "b"}


def two_instance_proxy(workers: int = 2) -> Proxy:
    watcher = CatalogWatcher(ConsulSettings())
    watcher.services = {"svc": service("svc", 1, 2)}
    return Proxy(GatewaySettings(admin_detail=True, workers=workers), watcher)


def test_the_page_adds_another_workers_requests_and_names_who_answered() -> None:
    proxy = two_instance_proxy()
    with proxy.stats.get("svc-1").track(proxy.stats.decay):
        pass
    now = time.monotonic()
    other = {**snap(77, {"svc-2": entry(second=int(now), attempts=[3])}), "at": now}
    state = page_state(proxy, 4242, [other], [])
    rows = {r["instance"]: r for r in state["services"][0]["instances"]}
    assert (rows["svc-1"]["requests_last_minute"], rows["svc-2"]["requests_last_minute"]) == (1, 3)
    assert state["services"][0]["requests_last_minute"] == 4
    assert state["worker"]["answered"] == [77, 4242] and state["worker"]["missing"] == 0


def test_explain_counts_another_workers_traffic_but_picks_with_its_own_balancer() -> None:
    proxy, _ = build(Upstreams({}), [service("svc", 1, 2)], admin_detail=True)
    now = time.monotonic()
    # The other worker ejected svc-1; this one did not, so its balancer may still pick it.
    out = entry(second=int(now), attempts=[5], ejections=1, ejection=ejection(now - 1, now + 60))
    other = {**snap(77, {"svc-1": out}), "at": now}
    body = explain(proxy, "/svc/", random.Random(1), others=[other])
    rows = {c["instance"]: c for c in body["candidates"]}
    assert rows["svc-1"]["requests_last_minute"] == 5 and rows["svc-1"]["ejected_by_workers"] == 1
    assert rows["svc-1"]["routed"] is True and body["worker"]["workers_counted"] == 2
    assert {s["instance"] for s in body["pick"]["sampled"]} == {"svc-1", "svc-2"}


@pytest.mark.parametrize(("ejected_in_other", "routed"), [(True, False), (False, True)])
def test_an_instance_is_excluded_only_when_every_worker_ejects_it(
    ejected_in_other: bool, routed: bool
) -> None:
    proxy = two_instance_proxy()
    services = {"svc": Service.of("svc", list(proxy.watcher.services["svc"].instances))}
    proxy.state = proxy.state._replace(services=services)
    assert proxy.stats.record_failure("svc-1", ["svc-1", "svc-2", "svc-3"], eject_now=True)
    now = time.monotonic()
    out = ejection(now - 1, now + 60) if ejected_in_other else None
    other = {**snap(77, {"svc-1": entry(ejections=1, ejection=out)}), "at": now}
    state = page_state(proxy, 4242, [other], [])
    row = next(r for r in state["services"][0]["instances"] if r["instance"] == "svc-1")
    assert row["ejected_by_workers"] == (2 if ejected_in_other else 1)
    assert ("ejected" in row["excluded"]) is not routed


def test_a_worker_snapshot_round_trips_through_the_folder(tmp_path: Path) -> None:
    proxy = two_instance_proxy()
    with proxy.stats.get("svc-2").track(proxy.stats.decay):
        pass
    # The writer is this process; a reader in another (live) process sees its file.
    asyncio.run(StateShare(str(tmp_path), proxy, os.getpid()).publish())
    found, silent = StateShare(str(tmp_path), proxy, pid=1).others(time.monotonic())
    assert silent == [] and [s["pid"] for s in found] == [os.getpid()]
    written = found[0]["instances"]["svc-2"]
    assert sum(series(written["attempts"], written["second"], time.monotonic())) == 1
    forget(str(tmp_path), os.getpid())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "unreadable snapshot"),
        ('{"pid": 1}', "unreadable snapshot"),
        ("[]", "unreadable snapshot"),
        (None, "no snapshot for"),
    ],
)
def test_a_corrupt_or_stale_snapshot_is_ignored_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str | None, why: str
) -> None:
    proxy = two_instance_proxy()
    now = time.monotonic()
    stale = {**snapshot(proxy, os.getpid(), now - MAX_AGE - 1)}
    (tmp_path / f"{os.getpid()}.json").write_text(content or json.dumps(stale))
    reader = StateShare(str(tmp_path), proxy, pid=1)
    with caplog.at_level(logging.WARNING, logger="gateway.admin.share"):
        for _ in range(3):  # the page asks every second
            found, silent = reader.others(now)
            assert found == [] and [s["pid"] for s in silent] == [os.getpid()]
            assert silent[0]["why"].startswith(why)
    assert caplog.text.count("ignoring the worker snapshot") == (content is not None)


def test_a_snapshot_under_another_workers_name_is_ignored(tmp_path: Path) -> None:
    proxy = two_instance_proxy()
    now = time.monotonic()
    (tmp_path / f"{os.getpid()}.json").write_text(json.dumps(snapshot(proxy, 99, now)))
    found, silent = StateShare(str(tmp_path), proxy, pid=1).others(now)
    assert found == [] and silent == [{"pid": os.getpid(), "why": "unreadable snapshot"}]


def test_the_file_of_a_process_that_is_gone_is_skipped(tmp_path: Path) -> None:
    proxy = two_instance_proxy()
    gone = 2**22 + 12345  # above Linux's pid_max default: no such process
    (tmp_path / f"{gone}.json").write_text(json.dumps(snapshot(proxy, gone, time.monotonic())))
    assert StateShare(str(tmp_path), proxy, pid=1).others(time.monotonic()) == ([], [])
