"""Rate limits (a token bucket per client and route) and in-flight limits (per service).

Pure bookkeeping, no I/O: the proxy asks, and answers 429 or 503 with :func:`retry_after`.
Both limiters run on one event-loop thread, so they take no locks.

A service may set its own limits in Consul, as meta or as tags (meta wins, see
:func:`gateway.routing.service_options`); the gateway-wide settings are the defaults:

==========================  ============================  ==================================
meta                        tag                           meaning
==========================  ============================  ==================================
``gateway-rate-limit``      ``gateway.rate-limit=N``      requests per second (0: no limit)
``gateway-rate-burst``      ``gateway.rate-burst=N``      bucket size (default twice the rate)
``gateway-max-inflight``    ``gateway.max-inflight=N``    requests in flight (0: no limit)
==========================  ============================  ==================================
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Hashable, Mapping
from itertools import islice
from typing import NamedTuple

from discovery.model import Service
from gateway.routing import service_options

log = logging.getLogger(__name__)

MAX_RATE = 1e6  # requests per second; also the largest burst and in-flight limit accepted
MAX_RETRY_AFTER = 86_400  # a day: a tiny configured rate must not ask clients to wait for years
EVICT_SCAN = 128  # buckets looked at when a new key finds the table full
PRUNE_SCAN = 10_000  # buckets looked at per prune() call (a few milliseconds)
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)  # no sign, nan, inf, 1e309 or 1_000


class RateLimiter:
    """Token buckets keyed by (client address, route), in the GCRA form: one float per key.

    A bucket holds up to *burst* tokens and gains *rate* tokens a second; a request takes one.
    The state is the time at which the bucket will be full again (the "theoretical arrival
    time"); a request passes when taking a token leaves the bucket at most *burst* tokens in
    debt of that. A bucket whose time has passed is full: it says nothing a fresh one would
    not, so it may be forgotten, which is what keeps memory bounded.

    Memory: at most *max_keys* buckets. A new key that finds the table full makes room by
    dropping the full buckets among the :data:`EVICT_SCAN` at the front of the table (those
    inserted or passed over longest ago: oldest first); buckets still draining go to the back,
    so successive scans, and :meth:`prune`, go round the whole table. If none of them is full,
    the table is held by clients that are all busy, and the new key is charged to one
    **overflow bucket** shared by every key that did not fit; until the earliest of the
    scanned buckets can have refilled, further new keys go there without a scan, so a flood
    of new addresses costs O(1) each.

    The overflow bucket fails closed in volume, open in kind. Refusing new keys outright would
    let whoever fills the table lock out every new client for as long as they keep it busy;
    letting them through unlimited would let the same attacker switch the limit off. The
    shared bucket gives all untracked clients together one client's allowance, so filling the
    table buys an attacker nothing while newcomers still get a trickle. :attr:`overflowed`
    counts those requests, for metrics; size *max_keys* above the number of clients active
    within a refill period and it stays 0.

    Keys must themselves be small (a normalized address and a route prefix), since the bound
    is on their number.
    """

    __slots__ = (
        "_buckets",
        "_clock",
        "_overflow",
        "_room_at",
        "burst",
        "max_keys",
        "overflowed",
        "rate",
    )

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if not 0.0 <= rate <= MAX_RATE:
            raise ValueError(f"rate must be between 0 and {MAX_RATE:g}, got {rate!r}")
        if not burst <= MAX_RATE or max_keys < 1:
            raise ValueError(f"burst must be at most {MAX_RATE:g} and max_keys at least 1")
        self.rate = rate
        self.burst = max(burst, 1.0)  # below one token no request could ever pass
        self.max_keys = max_keys
        self.overflowed = 0
        self._clock = clock
        # key -> [time the bucket is full again]; a one-item list so a known key is updated in
        # place: one dict lookup and no allocation on the hot path.
        self._buckets: dict[Hashable, list[float]] = {}
        self._overflow = [0.0]
        self._room_at = 0.0  # no bucket scanned by the last failed make-room is full before

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: Hashable, rate: float | None = None, burst: float | None = None) -> float:
        """0.0 if a request for *key* may pass (it takes a token), else seconds until one can.

        *rate* and *burst* override the limiter's own for this call (a service's limits);
        a *rate* given without a *burst* gets twice the rate. A rate of 0 means no limit.
        """
        if rate is None:
            rate = self.rate
            if burst is None:
                burst = self.burst
        elif burst is None:
            burst = 2.0 * rate
        if rate <= 0.0:
            return 0.0
        if burst < 1.0:
            burst = 1.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._new_bucket(key, now)
        interval = 1.0 / rate
        full_at = bucket[0]
        if full_at < now:
            full_at = now
        wait = full_at - now - (burst - 1.0) * interval
        if wait > 1e-9:  # a nanosecond of slack for rounding: now + 0.2 - now != 0.2 at t=1000
            return wait
        bucket[0] = full_at + interval
        return 0.0

    def prune(self, now: float | None = None, limit: int = PRUNE_SCAN) -> int:
        """Drop the full buckets among the next *limit* in the table; return how many went.

        Run it about once a second: successive calls go round the whole table.
        """
        return self._sweep(self._clock() if now is None else now, limit)[0]

    def _new_bucket(self, key: Hashable, now: float) -> list[float]:
        """A full bucket stored for *key*, or the shared overflow bucket if there is no room."""
        if len(self._buckets) >= self.max_keys and not self._make_room(now):
            self.overflowed += 1
            return self._overflow
        bucket = [now]
        self._buckets[key] = bucket
        return bucket

    def _make_room(self, now: float) -> bool:
        """Drop the full buckets at the front of the table; False if none was."""
        if now < self._room_at:
            return False
        dropped, earliest = self._sweep(now, EVICT_SCAN)
        if not dropped:
            self._room_at = earliest
        return dropped > 0

    def _sweep(self, now: float, limit: int) -> tuple[int, float]:
        """Drop full buckets among the first *limit*, send the others to the back.

        Returns how many went, and the earliest time one of those kept will be full.
        """
        buckets = self._buckets
        dropped, earliest = 0, math.inf
        for key, bucket in list(islice(buckets.items(), limit)):
            del buckets[key]
            if bucket[0] > now:
                buckets[key] = bucket
                earliest = min(earliest, bucket[0])
            else:
                dropped += 1
        return dropped, earliest


class InflightLimiter:
    """Requests in flight per service; a limit of 0 means no limit.

    Counts are kept for every service, limited or not (so a limit that changes while a request
    is in flight cannot unbalance them), and a service's entry goes when its count returns to 0:
    there are never more entries than services with a request in flight.
    """

    __slots__ = ("_counts", "limit")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def inflight(self, service: str) -> int:
        """Requests to *service* in flight now."""
        return self._counts.get(service, 0)

    def acquire(self, service: str, limit: int | None = None) -> bool:
        """Count one more request to *service*, or return False if it is at its limit."""
        if limit is None:
            limit = self.limit
        count = self._counts.get(service, 0)
        if 0 < limit <= count:
            return False
        self._counts[service] = count + 1
        return True

    def release(self, service: str) -> None:
        """Count one request to *service* less (never below zero)."""
        count = self._counts.get(service, 0)
        if count > 1:
            self._counts[service] = count - 1
        else:
            self._counts.pop(service, None)

    def hold(self, service: str, limit: int | None = None) -> Hold:
        """``with limiter.hold(name, n) as admitted:`` released on exit only if admitted."""
        return Hold(self, service, limit)


class Hold:
    """One request's place in an :class:`InflightLimiter`, taken on enter, given back on exit."""

    __slots__ = ("admitted", "limit", "limiter", "service")

    def __init__(self, limiter: InflightLimiter, service: str, limit: int | None) -> None:
        self.limiter, self.service, self.limit = limiter, service, limit
        self.admitted = False

    def __enter__(self) -> bool:
        self.admitted = self.limiter.acquire(self.service, self.limit)
        return self.admitted

    def __exit__(self, *exc_info: object) -> None:
        if self.admitted:
            self.admitted = False
            self.limiter.release(self.service)


def retry_after(seconds: float) -> str:
    """The ``Retry-After`` value for a wait of *seconds*: whole seconds, at least 1."""
    if math.isnan(seconds):
        return "1"
    if seconds >= MAX_RETRY_AFTER:
        return str(MAX_RETRY_AFTER)
    return str(max(1, math.ceil(seconds)))


class Limits(NamedTuple):
    """A service's limits: requests per second, bucket size, requests in flight (0: none)."""

    rate: float
    burst: float
    max_inflight: int


def limits_for(service: Service, defaults: Limits) -> Limits:
    """*service*'s limits from its Consul meta and tags, *defaults* where unset or invalid."""
    return limits_from_options(service_options(service), defaults, service.name)


def limits_from_options(options: Mapping[str, str], defaults: Limits, name: str = "") -> Limits:
    """Limits from :func:`service_options`-style keys (``rate-limit``...); never raises.

    A service that sets its rate but not its burst gets twice its rate, as the gateway-wide
    settings do. Malformed, negative or non-finite values are logged and ignored; values above
    :data:`MAX_RATE` are capped.
    """
    rate = _number(options, "rate-limit", name)
    burst = _number(options, "rate-burst", name)
    if burst is not None and burst < 1.0:
        log.warning("service %s: ignoring gateway rate-burst below 1: %r", name, burst)
        burst = None
    if burst is None:
        burst = defaults.burst if rate is None else max(2.0 * rate, 1.0)
    inflight = _number(options, "max-inflight", name, integer=True)
    return Limits(
        defaults.rate if rate is None else rate,
        min(burst, MAX_RATE),
        defaults.max_inflight if inflight is None else int(inflight),
    )


def _number(options: Mapping[str, str], key: str, name: str, integer: bool = False) -> float | None:
    """``options[key]`` as a plain non-negative decimal capped at MAX_RATE; None if unusable."""
    raw = options.get(key)
    if raw is None:
        return None
    text = raw.strip()
    if not _DECIMAL.fullmatch(text) or (integer and "." in text):
        log.warning("service %s: ignoring invalid gateway %s %r", name, key, raw[:40])
        return None
    value = float(text)
    if value > MAX_RATE:
        log.warning("service %s: gateway %s %s capped at %g", name, key, text[:40], MAX_RATE)
        return MAX_RATE
    return value
