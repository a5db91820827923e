"""Token buckets per client and route, in-flight limits per service, and their Consul options."""

from __future__ import annotations

import logging

import pytest

from discovery.model import Instance, Service
from gateway.ratelimit import (
    EVICT_SCAN,
    MAX_RATE,
    MAX_RETRY_AFTER,
    InflightLimiter,
    Limits,
    RateLimiter,
    limits_for,
    limits_from_options,
    retry_after,
)

KEY = ("203.0.113.7", "/catalog")


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(rate: float, burst: float, max_keys: int = 100_000) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(rate, burst, clock=clock, max_keys=max_keys), clock


def passes(rl: RateLimiter, n: int, key: object = KEY) -> int:
    return sum(rl.check(key) == 0.0 for _ in range(n))


@pytest.mark.parametrize(
    ("rate", "burst", "wait"),
    [(1.0, 3.0, 1.0), (2.0, 4.0, 0.5), (0.5, 1.0, 2.0), (4.0, 8.0, 0.25), (10.0, 5.0, 0.1)],
)
def test_a_full_bucket_lets_a_burst_through_then_asks_to_wait_one_interval(
    rate: float, burst: float, wait: float
) -> None:
    rl, _ = limiter(rate, burst)
    assert passes(rl, int(burst)) == int(burst)
    assert rl.check(KEY) == pytest.approx(wait)


def test_a_drained_bucket_refills_at_the_rate() -> None:
    rl, clock = limiter(rate=2.0, burst=4.0)
    assert passes(rl, 10) == 4
    clock.now += 0.5
    assert passes(rl, 10) == 1
    clock.now += 1.0
    assert passes(rl, 10) == 2
    clock.now += 3600.0  # a long idle spell refills up to the burst, no further
    assert passes(rl, 10) == 4


def test_refused_requests_take_no_token() -> None:
    rl, clock = limiter(rate=1.0, burst=1.0)
    assert rl.check(KEY) == 0.0
    for _ in range(100):
        assert rl.check(KEY) == pytest.approx(1.0)
    clock.now += 1.0
    assert rl.check(KEY) == 0.0


def test_the_wait_shrinks_as_time_passes() -> None:
    rl, clock = limiter(rate=1.0, burst=2.0)
    passes(rl, 2)
    clock.now += 0.25
    assert rl.check(KEY) == pytest.approx(0.75)
    assert retry_after(rl.check(KEY)) == "1"


def test_keys_have_separate_buckets() -> None:
    rl, _ = limiter(rate=1.0, burst=2.0)
    assert passes(rl, 5, ("198.51.100.1", "/catalog")) == 2
    assert passes(rl, 5, ("198.51.100.1", "/quote")) == 2
    assert passes(rl, 5, ("198.51.100.2", "/catalog")) == 2
    assert len(rl) == 3


@pytest.mark.parametrize(
    ("rate", "burst", "allowed", "wait"),
    [
        (5.0, 2.0, 2, 0.2),  # a service's own limits
        (1.0, None, 2, 1.0),  # a rate without a burst gets twice the rate
        (0.25, None, 1, 4.0),  # ... but never less than one request
        (1.0, 0.0, 1, 1.0),  # a burst below one is one
    ],
)
def test_per_call_limits_override_the_defaults(
    rate: float, burst: float | None, allowed: int, wait: float
) -> None:
    rl, _ = limiter(rate=100.0, burst=100.0)
    assert sum(rl.check(KEY, rate, burst) == 0.0 for _ in range(10)) == allowed
    assert rl.check(KEY, rate, burst) == pytest.approx(wait)


def test_the_defaults_apply_when_no_override_is_given() -> None:
    rl, _ = limiter(rate=1.0, burst=3.0)
    assert sum(rl.check(KEY, None, None) == 0.0 for _ in range(10)) == 3


@pytest.mark.parametrize(("rate", "override"), [(0.0, None), (1.0, 0.0), (0.0, 0.0)])
def test_rate_zero_means_unlimited_and_keeps_no_state(rate: float, override: float | None) -> None:
    rl, _ = limiter(rate=rate, burst=1.0)
    assert all(rl.check(("198.51.100.1", str(i)), override) == 0.0 for i in range(1000))
    assert len(rl) == 0


@pytest.mark.parametrize(
    ("seconds", "header"),
    [
        (0.0, "1"),
        (-3.0, "1"),
        (1e-9, "1"),
        (0.2, "1"),
        (1.0, "1"),
        (1.0001, "2"),
        (59.5, "60"),
        (float("nan"), "1"),
        (float("inf"), str(MAX_RETRY_AFTER)),
        (1e300, str(MAX_RETRY_AFTER)),
    ],
)
def test_retry_after_is_whole_seconds_and_at_least_one(seconds: float, header: str) -> None:
    assert retry_after(seconds) == header


def test_a_million_distinct_keys_never_grow_the_table_past_max_keys() -> None:
    max_keys = 1000
    rl, clock = limiter(rate=10.0, burst=1.0, max_keys=max_keys)
    largest = 0
    for i in range(1_000_000):
        clock.now += 1e-6  # a million addresses in one second; a bucket refills in 0.1 s
        rl.check((f"2001:db8::{i:x}", "/catalog"))
        largest = max(largest, len(rl))
    assert largest <= max_keys
    # While every tracked client was busy, the newcomers shared one bucket, and buckets that
    # had refilled made room for new keys all along (a refill takes 0.1 s: ten tables full).
    assert 0 < rl.overflowed <= 1_000_000 - 9 * max_keys


def test_new_keys_take_the_place_of_refilled_ones() -> None:
    rl, clock = limiter(rate=1.0, burst=1.0, max_keys=4)
    for i in range(4):
        clock.now = 1000.0 + 0.375 * i
        rl.check(i)
    clock.now = 1001.5  # keys 0 and 1 are full again (more than 1 s idle); 2 and 3 are not
    rl.check("new")
    assert set(rl._buckets) == {2, 3, "new"}
    assert rl.overflowed == 0


def test_eviction_looks_at_the_oldest_keys_first() -> None:
    rl, clock = limiter(rate=1.0, burst=1.0, max_keys=3 * EVICT_SCAN)
    for i in range(3 * EVICT_SCAN):
        rl.check(i)
    clock.now += 10.0  # every bucket is full again
    rl.check("new")
    assert set(range(EVICT_SCAN)).isdisjoint(rl._buckets)
    assert set(range(EVICT_SCAN, 3 * EVICT_SCAN)) <= set(rl._buckets)


def test_when_every_tracked_client_is_busy_newcomers_share_one_bucket() -> None:
    rl, clock = limiter(rate=1.0, burst=2.0, max_keys=2 * EVICT_SCAN)
    for i in range(2 * EVICT_SCAN):
        rl.check(i)
    # A flood of new addresses gets one client's allowance between them, not one each.
    assert sum(rl.check(("flood", i)) == 0.0 for i in range(1000)) == 2
    assert rl.overflowed == 1000
    assert len(rl) == 2 * EVICT_SCAN
    # The flood scanned the table once, not once per newcomer (a scan reorders it).
    order = list(rl._buckets)
    rl.check("one more")
    assert list(rl._buckets) == order
    # Tracked clients keep their own buckets meanwhile.
    assert rl.check(0) == 0.0
    clock.now += 10.0
    assert rl.check("late") == 0.0
    assert "late" in rl._buckets


def test_a_busy_client_keeps_its_bucket_across_evictions() -> None:
    rl, clock = limiter(rate=1.0, burst=1.0, max_keys=9)
    for round_ in range(50):
        assert rl.check("busy") == 0.0
        clock.now += 0.5
        for i in range(8):  # last round's keys are full again and make room for these
            rl.check((round_, i))
        assert rl.check("busy") == pytest.approx(0.5)  # its debt was not forgotten
        clock.now += 0.5
    assert rl.overflowed == 0
    assert set(rl._buckets) == {"busy", *((49, i) for i in range(8))}


def test_prune_drops_refilled_buckets_only() -> None:
    rl, clock = limiter(rate=1.0, burst=2.0)
    for i in range(10):
        rl.check(i)  # one token of two: full again after 1 s
    rl.check("drained")
    rl.check("drained")  # full again after 2 s
    clock.now += 1.0
    assert rl.prune() == 10
    assert set(rl._buckets) == {"drained"}
    assert rl.prune(clock.now + 2.0) == 1
    assert len(rl) == 0


def test_prune_bounds_its_work_and_goes_round_the_table() -> None:
    rl, clock = limiter(rate=1.0, burst=1.0)
    for i in range(100):
        clock.now = 1000.0 + 0.01 * i
        rl.check(i)  # full again at 1001 + 0.01 * i
    clock.now = 1001.495  # keys 0 to 49 are full again
    assert rl.prune(limit=10) == 10
    rl.check(0)  # a new bucket for key 0, at the back of the table
    dropped = [rl.prune(limit=10) for _ in range(9)]
    assert dropped == [10, 10, 10, 10, 0, 0, 0, 0, 0]
    assert set(rl._buckets) == {0, *range(50, 100)}


def test_limiter_rejects_nonsense_settings() -> None:
    for rate, burst, max_keys in [(-1.0, 1.0, 10), (float("nan"), 1.0, 10), (1.0, 1.0, 0)]:
        with pytest.raises(ValueError):
            RateLimiter(rate, burst, max_keys=max_keys)
    assert RateLimiter(0.3, 0.6).burst == 1.0


# In-flight limits


def test_inflight_refuses_beyond_the_limit_and_admits_after_a_release() -> None:
    il = InflightLimiter(2)
    assert il.acquire("catalog") and il.acquire("catalog")
    assert not il.acquire("catalog")
    assert il.acquire("quote")  # each service has its own count
    il.release("catalog")
    assert il.acquire("catalog")
    assert il.inflight("catalog") == 2


@pytest.mark.parametrize(("default", "override", "admitted"), [(1, 3, 3), (5, None, 5), (5, 0, 50)])
def test_inflight_per_call_limit_overrides_the_default(
    default: int, override: int | None, admitted: int
) -> None:
    il = InflightLimiter(default)
    assert sum(il.acquire("catalog", override) for _ in range(50)) == admitted


def test_inflight_zero_means_unlimited() -> None:
    il = InflightLimiter(0)
    assert all(il.acquire("catalog") for _ in range(10_000))


def test_inflight_entries_go_when_their_count_returns_to_zero() -> None:
    il = InflightLimiter(0)
    for i in range(1000):
        il.acquire(f"svc{i}")
    for i in range(1000):
        il.release(f"svc{i}")
    assert len(il) == 0
    il.release("never-acquired")  # an extra release never goes negative
    assert len(il) == 0 and il.acquire("never-acquired", 1) and not il.acquire("never-acquired", 1)


def test_hold_gives_its_place_back_even_when_the_request_fails() -> None:
    il = InflightLimiter(1)
    with pytest.raises(RuntimeError), il.hold("catalog") as admitted:
        assert admitted
        raise RuntimeError("upstream blew up")
    assert il.inflight("catalog") == 0
    with il.hold("catalog") as first, il.hold("catalog") as second:
        assert (first, second) == (True, False)
    assert len(il) == 0


def test_a_refused_hold_releases_nothing() -> None:
    il = InflightLimiter(1)
    assert il.acquire("catalog")
    with il.hold("catalog") as admitted:
        assert not admitted
    assert il.inflight("catalog") == 1


def test_a_hold_survives_a_limit_change_while_in_flight() -> None:
    il = InflightLimiter(0)
    with il.hold("catalog") as admitted:
        assert admitted
        il.limit = 1
        assert not il.acquire("catalog")
    assert il.inflight("catalog") == 0


# Per-service options from Consul

DEFAULTS = Limits(rate=10.0, burst=20.0, max_inflight=100)


def service(tags: tuple[str, ...] = (), meta: dict[str, str] | None = None) -> Service:
    inst = Instance("orders-1", "orders", "127.0.0.1", 9000, "passing", tags=tags, meta=meta or {})
    return Service.of("orders", [inst])


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({}, DEFAULTS),
        ({"gateway-rate-limit": "5"}, Limits(5.0, 10.0, 100)),
        ({"gateway-rate-limit": "0.2"}, Limits(0.2, 1.0, 100)),
        ({"gateway-rate-limit": "5", "gateway-rate-burst": "7.5"}, Limits(5.0, 7.5, 100)),
        ({"gateway-rate-burst": "3"}, Limits(10.0, 3.0, 100)),
        ({"gateway-rate-limit": "0"}, Limits(0.0, 1.0, 100)),
        ({"gateway-max-inflight": "0"}, Limits(10.0, 20.0, 0)),
        ({"gateway-max-inflight": "7"}, Limits(10.0, 20.0, 7)),
        ({"gateway-rate-limit": " 5 "}, Limits(5.0, 10.0, 100)),
        ({"other-rate-limit": "1", "rate-limit": "1"}, DEFAULTS),
    ],
)
def test_meta_sets_a_services_limits(meta: dict[str, str], expected: Limits) -> None:
    assert limits_for(service(meta=meta), DEFAULTS) == expected


def test_tags_set_limits_and_meta_wins() -> None:
    svc = service(tags=("gateway.rate-limit=3", "gateway.max-inflight=4"))
    assert limits_for(svc, DEFAULTS) == Limits(3.0, 6.0, 4)
    svc = service(tags=("gateway.rate-limit=3",), meta={"gateway-rate-limit": "8"})
    assert limits_for(svc, DEFAULTS).rate == 8.0


HOSTILE = ["-1", "nan", "NaN", "inf", "-inf", "1e309", "1e3", "", " ", "0x10", "1_000", "+5"]
HOSTILE += ["5/s", "1.", ".5", "1,5", "\u0665", "\u00b2", "\x00"]  # Arabic-Indic 5, superscript 2
HOSTILE += ["9" * 400 + "e9", "1" * 5000 + "x"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("key", ["rate-limit", "rate-burst", "max-inflight"])
def test_hostile_values_fall_back_to_the_defaults_with_a_warning(
    key: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        assert limits_from_options({key: value}, DEFAULTS, "orders") == DEFAULTS
    assert f"service orders: ignoring invalid gateway {key}" in caplog.text


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"rate-limit": "1000000000000"}, Limits(MAX_RATE, MAX_RATE, 100)),
        ({"rate-burst": "99999999"}, Limits(10.0, MAX_RATE, 100)),
        ({"max-inflight": "12345678901234567890"}, Limits(10.0, 20.0, int(MAX_RATE))),
        ({"rate-limit": "9" * 400 + ".9"}, Limits(MAX_RATE, MAX_RATE, 100)),
        ({"max-inflight": "1" * 5000}, Limits(10.0, 20.0, int(MAX_RATE))),
        ({"max-inflight": "2.5"}, DEFAULTS),
        ({"rate-burst": "0.5"}, DEFAULTS),
        ({"rate-burst": "0"}, DEFAULTS),
        ({"rate-limit": "-1", "rate-burst": "4"}, Limits(10.0, 4.0, 100)),
    ],
)
def test_absurd_values_are_capped_and_useless_ones_ignored(
    options: dict[str, str], expected: Limits
) -> None:
    assert limits_from_options(options, DEFAULTS, "orders") == expected
