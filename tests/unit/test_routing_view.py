"""The routing page's bookkeeping and views: the minute window, failure reasons, the retry
budget's readout, balancer previews, explain's input rules and its answer, without sockets."""

from __future__ import annotations

import itertools
import random
import time
from ipaddress import ip_network
from typing import Any

import pytest

from discovery.balancer import STRATEGIES, make_picker
from discovery.model import Check, Instance, Service
from discovery.settings import ConsulSettings
from discovery.stats import StatsTable
from discovery.watcher import CatalogWatcher
from discovery.window import WINDOW_SECONDS, MinuteCounter
from gateway.admin.explain import MAX_PATH, BadParameter, checked_path, explain
from gateway.admin.view import page_state
from gateway.errors import (
    ConnectFailed,
    UpstreamBadResponse,
    UpstreamBroken,
    UpstreamError,
    UpstreamTimeout,
    failure_reason,
)
from gateway.proxy import Proxy
from gateway.retry import RetryBudget
from gateway.settings import GatewaySettings
from tests.unit.inmemory import Upstreams, answer, build, exchanges, service

GET = b"GET /svc/items HTTP/1.1\r\nHost: gw\r\n\r\n"


# -- the one-minute window ------------------------------------------------------------------


def test_the_window_counts_each_second_and_forgets_what_is_older_than_a_minute() -> None:
    counter = MinuteCounter()
    for now in (100.0, 100.5, 101.2, 159.9):
        counter.add(now)
    assert counter.total(159.9) == 4
    series = counter.series(159.9)
    assert len(series) == WINDOW_SECONDS and series[0] == 2 and series[1] == 1
    assert counter.total(160.0) == 2  # second 100 has left the window
    assert counter.total(161.0) == 1
    assert counter.total(1000.0) == 0


def test_a_bucket_reused_a_minute_later_starts_from_zero() -> None:
    counter = MinuteCounter()
    for _ in range(5):
        counter.add(10.0)
    counter.add(10.0 + WINDOW_SECONDS)  # the same bucket, a minute on
    assert counter.total(10.0 + WINDOW_SECONDS) == 1


def test_every_attempt_is_counted_in_its_instances_window() -> None:
    table = StatsTable()
    for _ in range(3):
        with table.get("a").track(table.decay):
            pass
    assert table.get("a").attempts.total(time.monotonic()) == 3
    assert table.get("a").outstanding == 0


# -- why an instance failed and was ejected ---------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (ConnectFailed.of(ConnectionRefusedError(111, "refused")), 0, "connect_refused"),
        (ConnectFailed.of(TimeoutError()), 0, "connect_timeout"),
        (ConnectFailed.of(OSError(113, "no route")), 0, "connect_failed"),
        (UpstreamTimeout("slow"), 0, "timeout"),
        (UpstreamBroken("reset", reused=False), 0, "connection_broken"),
        (UpstreamBadResponse("garbage"), 0, "bad_response"),
        (None, 503, "status_503"),
    ],
)
def test_failure_reasons(error: UpstreamError | None, status: int, reason: str) -> None:
    assert failure_reason(error, status) == reason


def test_an_ejection_keeps_its_reason_streak_and_start() -> None:
    table = StatsTable()
    peers = ["a", "b", "c"]
    for reason in ("timeout", "status_502", "status_503"):
        ejected = table.record_failure("a", peers, reason=reason)
    stats = table.get("a")
    assert ejected and stats.ejection_reason == "status_503" and stats.ejection_failures == 3
    # The first ejection lasts the policy's base time (no wall-clock comparison: none can fail
    # on a slow machine).
    assert stats.ejected_until - stats.ejected_at == table.policy.base_seconds
    assert stats.last_failure == "status_503" and stats.failures.total(stats.ejected_at) == 3


def test_find_creates_no_stats() -> None:
    table = StatsTable()
    assert table.find("never-seen") is None
    assert table.find("never-seen") is None


# -- the retry budget's readout ---------------------------------------------------------------


def test_reading_the_retry_budget_takes_nothing_from_it() -> None:
    budget = RetryBudget(ratio=0.5, floor=1, window=10.0, clock=lambda: 5.0)
    for _ in range(4):
        budget.record_request()
    for _ in range(50):
        usage = budget.usage()
    assert usage == {
        "window_seconds": 10.0,
        "requests": 4,
        "retries": 0,
        "allowed": 3.0,
        "granted_total": 0,
        "denied_total": 0,
    }
    assert [budget.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert budget.usage()["granted_total"] == 3 and budget.usage()["denied_total"] == 1


# -- balancer previews ------------------------------------------------------------------------


def instances(n: int) -> list[Instance]:
    return [Instance(f"i{k}", "svc", "127.0.0.1", 1000 + k, "passing") for k in range(n)]


def test_a_round_robin_preview_names_the_next_pick_and_moves_no_turn() -> None:
    picker = make_picker("round_robin", StatsTable())
    candidates = instances(3)
    picker.pick(candidates)
    previews = {picker.preview(candidates, random.Random(1)).choice.id for _ in range(5)}
    assert previews == {picker.pick(candidates).id}


@pytest.mark.parametrize("name", ["least_outstanding", "peak_ewma"])
def test_a_p2c_preview_keeps_the_cheaper_of_the_two_it_drew(name: str) -> None:
    stats = StatsTable()
    candidates = instances(4)
    stats.get("i0").begin(time.monotonic())  # one request in flight on i0
    picker = make_picker(name, stats)
    state = random.getstate()
    for seed in range(20):
        preview = picker.preview(candidates, random.Random(seed))
        (a, cost_a), (b, cost_b) = preview.sampled
        assert a != b and preview.choice == (a if cost_a <= cost_b else b)
        assert preview.choice.id != "i0" or {a.id, b.id} == {"i0"}
    assert random.getstate() == state  # the balancer's own random stream is untouched


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_balancer_previews_a_candidate(name: str) -> None:
    candidates = instances(2)
    preview = make_picker(name, StatsTable()).preview(candidates, random.Random(0))
    assert preview.choice in candidates and preview.rule


# -- explain's input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ([], "required"),
        ([""], "must start with '/'"),
        (["catalog/items"], "must start with '/'"),
        (["/" + "a" * MAX_PATH], f"at most {MAX_PATH}"),
        (["/catalog/../echo"], "'..' segment"),
        (["/catalog/%2e%2e/echo"], "'..' segment"),
        (["/catalog/./items"], "'..' segment"),
        (["/catalog/a b"], "printable ASCII"),
        (["/catalog/\u00e9"], "printable ASCII"),
        (["/catalog/", "/echo/"], "once"),
    ],
)
def test_explain_refuses_a_bad_path_naming_it(values: list[str], fragment: str) -> None:
    with pytest.raises(BadParameter) as caught:
        checked_path(values)
    assert caught.value.name == "path" and fragment in caught.value.detail


@pytest.mark.parametrize(
    ("value", "path"),
    [("/catalog/items", "/catalog/items"), ("/catalog/items?sku=1", "/catalog/items"), ("/", "/")],
)
def test_explain_takes_a_good_path_without_its_query(value: str, path: str) -> None:
    assert checked_path([value]) == path


# -- explain's answer and the page's state ----------------------------------------------------


def explained(proxy: Proxy, path: str) -> dict[str, Any]:
    return explain(proxy, path, random.Random(0))


def test_explain_shows_a_refused_instance_ejected_and_picks_another() -> None:
    ups = Upstreams({1: lambda req: answer(b"one"), 2: lambda req: answer(b"two")}, refused={1})
    proxy, front = build(ups, [service("svc", 1, 2)], balancer="round_robin", admin_detail=True)
    exchanges(front, GET, GET)
    body = explained(proxy, "/svc/items")
    assert body["route"]["service"] == "svc" and body["route"]["upstream_path"] == "/items"
    assert body["route"]["limits"] == {"rate": 0.0, "burst": 0.0, "max_inflight": 0}
    rows = {c["instance"]: c for c in body["candidates"]}
    assert rows["svc-1"]["excluded"] == ["ejected"]
    assert rows["svc-1"]["ejection"]["reason"] == "connect_refused"
    assert rows["svc-1"]["ejection"]["until_consul_reports_it_back"] is True
    assert body["pick"]["instance"] == "svc-2"


def test_explain_changes_no_balancer_state() -> None:
    ups = Upstreams({p: lambda req: answer() for p in (1, 2, 3)})
    proxy, _ = build(ups, [service("svc", 1, 2, 3)], balancer="round_robin", admin_detail=True)
    passing = proxy.services["svc"].passing
    picker = proxy.picker("svc", "round_robin")
    picker.pick(passing)
    picks = {explained(proxy, "/svc/x")["pick"]["instance"] for _ in range(5)}
    assert picks == {picker.pick(passing).id}  # the preview was the next turn, still unused
    assert proxy.budget.usage()["requests"] == 0
    assert all(proxy.stats.find(i.id) is None for i in passing)  # no attempt was counted


def test_without_detail_instances_are_named_by_their_place() -> None:
    ups = Upstreams({p: lambda req: answer() for p in (1, 2)})
    proxy, _ = build(ups, [service("svc", 1, 2)])
    body = explained(proxy, "/svc/")
    assert [c["instance"] for c in body["candidates"]] == ["svc#1", "svc#2"]
    assert all("address" not in c and "checks" not in c for c in body["candidates"])


def test_explain_names_a_refused_route_claim() -> None:
    claimed = Service.of(
        "shop", [Instance("shop-1", "shop", "10.0.0.1", 80, "passing", tags=("gateway.prefix=/x",))]
    )
    ups = Upstreams({})
    proxy, _ = build(ups, [claimed, service("svc", 1)])
    body = explained(proxy, "/x/items")
    assert body["route"] is None and body["answer"] == {"status": 404, "error": "unknown_service"}
    notes = {r["service"]: r for r in body["routes"]}
    assert notes["shop"]["prefix"] == "/shop"
    assert notes["shop"]["note"] == "claim of /x refused: not in GATEWAY_ROUTE_CLAIMS"


def test_explain_names_instances_outside_the_cidrs_and_not_passing() -> None:
    critical = (Check("c", "http", "critical", "refused"),)
    svc = Service.of(
        "svc",
        [
            Instance("svc-a", "svc", "127.0.0.1", 1, "passing"),
            Instance("svc-b", "svc", "192.0.2.7", 2, "passing"),
            Instance("svc-c", "svc", "127.0.0.1", 3, "critical", checks=critical),
            Instance("svc-d", "svc", "127.0.0.1", 4, "maintenance"),
        ],
    )
    proxy, _ = build(
        Upstreams({1: lambda req: answer()}),
        [svc],
        admin_detail=True,
        upstream_cidrs=(ip_network("127.0.0.0/8"),),
    )
    body = explained(proxy, "/svc/")
    excluded = {c["instance"]: c["excluded"] for c in body["candidates"]}
    assert excluded == {
        "svc-a": [],
        "svc-b": ["outside_upstream_cidrs"],
        "svc-c": ["consul_critical"],
        "svc-d": ["maintenance"],
    }
    assert body["pick"]["instance"] == "svc-a"


def test_the_page_state_shares_traffic_per_service_and_names_the_worker() -> None:
    watcher = CatalogWatcher(ConsulSettings())
    watcher.services = {"svc": service("svc", 1, 2)}
    proxy = Proxy(GatewaySettings(admin_detail=True), watcher)
    for instance_id, count in (("svc-1", 3), ("svc-2", 1)):
        for _ in itertools.repeat(None, count):
            with proxy.stats.get(instance_id).track(proxy.stats.decay):
                pass
    state = page_state(proxy, pid=4242)
    worker = state["worker"]
    assert (worker["pid"], worker["workers"], worker["answered"]) == (4242, 2, [4242])
    assert worker["merged"] is False and worker["missing"] is None  # no other worker asked
    assert state["consul"]["last_sync_age_seconds"] is None  # never synced: no answer yet
    (svc,) = state["services"]
    assert svc["requests_last_minute"] == 4
    assert [(r["instance"], r["share"]) for r in svc["instances"]] == [
        ("svc-1", 0.75),
        ("svc-2", 0.25),
    ]


def test_the_stats_of_instances_consul_no_longer_lists_are_dropped_unless_busy() -> None:
    table = StatsTable()
    for instance_id in ("kept", "gone", "busy"):
        with table.get(instance_id).track(table.decay):
            pass
    table.get("busy").begin(time.monotonic())
    table.forget_absent({"kept"})
    assert table.find("kept") is not None and table.find("busy") is not None
    assert table.find("gone") is None


@pytest.mark.parametrize(("threshold", "routed"), [(0.5, False), (0.8, True)])
def test_an_ejected_instance_is_shown_routed_when_the_panic_threshold_keeps_it(
    threshold: float, routed: bool
) -> None:
    proxy, _ = build(
        Upstreams({}), [service("svc", 1, 2)], admin_detail=True, panic_threshold=threshold
    )
    assert proxy.stats.record_failure("svc-1", ["svc-1", "svc-2"], eject_now=True)
    rows = {c["instance"]: c for c in explained(proxy, "/svc/")["candidates"]}
    assert rows["svc-1"]["routed"] is routed
    assert rows["svc-1"]["ejection_ignored_by_panic_threshold"] is routed
    assert rows["svc-1"]["ejection"]["active"] is True


def test_a_warning_in_consul_keeps_an_instance_out() -> None:
    warned = Instance("svc-w", "svc", "127.0.0.1", 9, "warning")
    proxy, _ = build(Upstreams({}), [Service.of("svc", [warned])], admin_detail=True)
    body = explained(proxy, "/svc/")
    assert body["candidates"][0]["excluded"] == ["consul_warning"]
    assert body["answer"] == {"status": 503, "error": "no_passing_instance"} and "pick" not in body
