"""Per-instance runtime state shared by the balancers: load, latency and passive health.

Every process keeps its own table. The balancers read it to choose an instance, and the caller
feeds it after each attempt. Outlier ejection follows Envoy's model: consecutive failures eject
an instance for ``base * 2**(ejections)`` seconds, capped, and never more than
``max_ejected_fraction`` of a service's instances at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from discovery.window import MinuteCounter

# Latency assumed for an instance that has answered nothing yet.
DEFAULT_RTT = 0.005


@dataclass
class InstanceStats:
    """Mutable counters of one instance; every change happens under its lock."""

    outstanding: int = 0
    ewma: float = DEFAULT_RTT
    ewma_at: float = field(default_factory=time.monotonic)
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    # Ejected because a connection was refused: out until Consul has seen it down and up.
    awaiting_consul: bool = False
    seen_down: bool = False
    # For the routing page: attempts and failures over the last minute, and the reasons.
    attempts: MinuteCounter = field(default_factory=MinuteCounter, repr=False)
    failures: MinuteCounter = field(default_factory=MinuteCounter, repr=False)
    last_failure: str = ""
    last_failure_at: float = 0.0
    ejection_reason: str = ""
    ejection_failures: int = 0  # the failure streak that ejected it
    ejected_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def begin(self, now: float | None = None) -> None:
        """A request to this instance starts (at *now*, a ``time.monotonic()`` reading)."""
        with self.lock:
            self.outstanding += 1
            self.attempts.add(time.monotonic() if now is None else now)

    def end(self, rtt: float | None, decay: float) -> None:
        """A request ends after *rtt* seconds; fold it into the peak EWMA (None: no measure).

        Peak EWMA (as in Finagle and Linkerd) jumps straight up to a slower observation and
        decays back down with time constant *decay*, so a replica that turns slow loses traffic
        at once and wins it back gradually.
        """
        with self.lock:
            self.outstanding -= 1
            if rtt is None:
                return
            now = time.monotonic()
            if rtt > self.ewma:
                self.ewma = rtt
            else:
                w = math.exp(-(now - self.ewma_at) / decay)
                self.ewma = self.ewma * w + rtt * (1 - w)
            self.ewma_at = now

    def cost(self) -> float:
        """Expected wait if one more request is sent here (peak EWMA times the queue)."""
        return self.ewma * (self.outstanding + 1)

    def track(self, decay: float, clock: Callable[[], float] = time.monotonic) -> Tracked:
        """``with stats.track(decay) as attempt:`` counts one request in flight, whatever ends it."""
        return Tracked(self, decay, clock)


class Tracked:
    """One request in flight to an instance: begun on enter, ended on exit, even on errors.

    The latency fed to the EWMA is the instance's own part: the time to the answer's head
    (:meth:`answered`), less every wait for the client's body (:meth:`waiting_for_client`).
    A client that uploads slowly, or stalls, is never the instance's latency, or peak EWMA
    would shun a healthy instance for it. Without an answer, the whole attempt less those
    waits counts (a timeout is the instance's), unless the attempt ended while waiting for the
    client (it left, or stopped sending): then nothing about the instance was measured.
    """

    __slots__ = (
        "client_ended",
        "clock",
        "decay",
        "rtt",
        "started",
        "stats",
        "wait_began",
        "waited",
    )

    def __init__(
        self, stats: InstanceStats, decay: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stats, self.decay, self.clock = stats, decay, clock
        self.started = self.waited = 0.0
        self.wait_began: float | None = None  # a wait for the client under way since then
        self.client_ended = False
        self.rtt: float | None = None

    def __enter__(self) -> Tracked:
        self.started = self.clock()
        self.stats.begin(self.started)
        return self

    def waiting_for_client(self) -> ClientWait:
        """``with attempt.waiting_for_client():`` around each wait for the client's body."""
        return ClientWait(self)

    def instance_time(self) -> float:
        """Seconds since the attempt began, less the waits for the client, the current one too."""
        now = self.clock()
        waiting = now - self.wait_began if self.wait_began is not None else 0.0
        return now - self.started - self.waited - waiting

    def answered(self) -> float:
        """Note that the answer's head arrived; return the instance's part of the time."""
        self.rtt = self.instance_time()
        return self.rtt

    def __exit__(self, *exc_info: object) -> None:
        rtt = self.rtt
        if rtt is None and not self.client_ended:
            rtt = self.instance_time()
        self.stats.end(rtt, self.decay)


class ClientWait:
    """One wait for the client's body: its time is not the instance's; an error is the client's."""

    __slots__ = ("attempt",)

    def __init__(self, attempt: Tracked) -> None:
        self.attempt = attempt

    def __enter__(self) -> None:
        self.attempt.wait_began = self.attempt.clock()

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        attempt = self.attempt
        if attempt.wait_began is not None:
            attempt.waited += attempt.clock() - attempt.wait_began
            attempt.wait_began = None
        if exc_type is not None:  # the client left, stalled or sent a bad body: no measure
            attempt.client_ended = True


@dataclass(frozen=True)
class EjectionPolicy:
    """When consecutive failures take an instance out of rotation, and for how long."""

    consecutive_failures: int = 3
    base_seconds: float = 5.0
    max_seconds: float = 120.0
    max_ejected_fraction: float = 0.5


class StatsTable:
    """The InstanceStats of every instance this process has talked to, by instance ID."""

    def __init__(self, policy: EjectionPolicy | None = None, decay: float = 10.0) -> None:
        self.policy = policy or EjectionPolicy()
        self.decay = decay
        self._stats: dict[str, InstanceStats] = {}
        # No instance is ejected after this time: lets the hot path skip the per-instance check.
        self.ejections_end = 0.0

    def get(self, instance_id: str) -> InstanceStats:
        """The stats of *instance_id*, created on first use."""
        stats = self._stats.get(instance_id)
        if stats is None:
            stats = self._stats.setdefault(instance_id, InstanceStats())
        return stats

    def find(self, instance_id: str) -> InstanceStats | None:
        """The stats of *instance_id* if it has any, creating none (for read-only views)."""
        return self._stats.get(instance_id)

    def record_success(self, instance_id: str) -> None:
        """The instance answered: its failure streak ends."""
        stats = self.get(instance_id)
        if stats.consecutive_failures:
            with stats.lock:
                stats.consecutive_failures = 0

    def record_failure(
        self,
        instance_id: str,
        peer_ids: Sequence[str],
        eject_now: bool = False,
        reason: str = "failed",
    ) -> bool:
        """Count a failure; return True if this failure ejected the instance.

        *reason* names the kind of failure (``connect_failed``, ``timeout``, ``status_503``...)
        for the routing page. *peer_ids* are the service's instances, which bound how many may
        be ejected at once.
        *eject_now* ejects at once (a refused connection means the process is gone); such an
        instance stays out until Consul reports it passing again after a failure or
        re-registration (see :meth:`observe`), or at most ``max_seconds``.
        """
        stats = self.get(instance_id)
        now = time.monotonic()
        with stats.lock:
            stats.consecutive_failures += 1
            stats.failures.add(now)
            stats.last_failure, stats.last_failure_at = reason, now
            if stats.ejected_until > now:
                return False  # already out of rotation
            if not eject_now and stats.consecutive_failures < self.policy.consecutive_failures:
                return False
        limit = self.policy.max_ejected_fraction * len(peer_ids)
        if self.ejected_count(peer_ids) + 1 > limit:
            return False
        with stats.lock:
            if eject_now:
                seconds = self.policy.max_seconds
                stats.awaiting_consul, stats.seen_down = True, False
            else:
                seconds = min(
                    self.policy.max_seconds, self.policy.base_seconds * 2**stats.ejections
                )
            stats.ejections += 1
            stats.ejected_until = now + seconds
            stats.ejected_at, stats.ejection_reason = now, reason
            stats.ejection_failures = stats.consecutive_failures
            self.ejections_end = max(self.ejections_end, stats.ejected_until)
        return True

    def observe(self, passing_ids: set[str]) -> list[str]:
        """Feed Consul's view after each change; return the instances let back in.

        An instance ejected for a refused connection returns once Consul has reported it
        not passing (or gone) and then passing again: the process came back.
        """
        returned = []
        for instance_id, stats in list(self._stats.items()):
            if not stats.awaiting_consul:
                continue
            if instance_id not in passing_ids:
                stats.seen_down = True
            elif stats.seen_down:
                self.forget_ejection(instance_id)
                returned.append(instance_id)
        return returned

    def forget_absent(self, listed_ids: set[str]) -> None:
        """Drop the stats of idle instances Consul no longer lists, so churn cannot grow the table.

        An instance that comes back under the same ID starts afresh, as one ejected for a
        refused connection would once Consul saw it gone and back.
        """
        for instance_id, stats in list(self._stats.items()):
            if instance_id not in listed_ids and not stats.outstanding:
                del self._stats[instance_id]

    def is_ejected(self, instance_id: str, now: float) -> bool:
        """Whether the instance is out of rotation at *now*."""
        stats = self._stats.get(instance_id)
        return stats is not None and stats.ejected_until > now

    def ejected_count(self, instance_ids: Sequence[str]) -> int:
        """How many of *instance_ids* are ejected right now."""
        now = time.monotonic()
        return sum(1 for i in instance_ids if self.is_ejected(i, now))

    def forget_ejection(self, instance_id: str) -> None:
        """Consul reports the instance passing after it was gone: give it a clean slate."""
        stats = self._stats.get(instance_id)
        if stats is not None:
            with stats.lock:
                stats.ejected_until = 0.0
                stats.consecutive_failures = 0
                stats.awaiting_consul = stats.seen_down = False
