"""Forwarding one admitted request: attempts at instances, retries, ejection, and the relay.

The retry rules, as before the event loop: a connection that never formed may go to another
instance for any method; a broken connection or a 502/503/504 only for an idempotent method
(or one with an ``Idempotency-Key``) whose body the gateway still holds; a reused keep-alive
connection the instance closed as the request went out is tried once more on a fresh one,
under the same rule. Every retry draws on the retry budget (:mod:`gateway.retry`). A timeout
is never retried: the instance may still be working on the request.

Each attempt is an :class:`Attempt` value; its connection is leased from the pool and given
back (kept or closed, :meth:`gateway.pool.Pool.release`) in one ``finally``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

from discovery.balancer import Picker, make_picker
from discovery.client import IDEMPOTENT_METHODS
from discovery.model import Instance, Service
from discovery.stats import StatsTable, Tracked
from gateway import metrics
from gateway.access import Record
from gateway.candidates import candidates
from gateway.errors import (
    ConnectFailed,
    LocalResourceError,
    Refusal,
    UpstreamBadResponse,
    UpstreamBroken,
    UpstreamError,
    UpstreamTimeout,
    failure_reason,
)
from gateway.pool import Pool
from gateway.relay import answer_lines, relay_now, relay_stream
from gateway.reply import Reply
from gateway.request import Request
from gateway.retry import RetryBudget, may_retry_status
from gateway.settings import GatewaySettings
from gateway.upstream import Answer, UpstreamConnection

log = logging.getLogger(__name__)
LOCAL_ERROR_LOG_EVERY = 1.0  # seconds between log lines about the gateway's own shortages
_IDEMPOTENT = frozenset(m.encode() for m in IDEMPOTENT_METHODS)


class Attempt:
    """One try at one instance: what is sent, within how long, and its timing."""

    __slots__ = ("body", "head", "idempotent", "instance", "key", "number", "timeout", "tracked")

    def __init__(
        self,
        instance: Instance,
        head: bytes,
        body: bytes | None,
        timeout: float,
        idempotent: bool,
        number: int,
    ) -> None:
        self.instance = instance
        self.key = (instance.address, instance.port)
        self.head = head
        self.body = body  # None: streamed from the client as it arrives
        self.timeout = timeout
        self.idempotent = idempotent
        self.number = number  # 0 for the first attempt of the request
        self.tracked: Tracked | None = None  # in flight to the instance, and its latency


class Failed(NamedTuple):
    """How an attempt failed, and whether another instance may be tried."""

    refusal: Refusal  # the answer if nothing better comes
    retry: bool


class Forwarder:
    """Chooses instances, sends attempts, applies the retry rules, and relays the answer."""

    def __init__(self, settings: GatewaySettings, stats: StatsTable, pool: Pool) -> None:
        self.settings = settings
        self.stats = stats
        self.pool = pool
        self.budget = RetryBudget(settings.retry_budget_ratio, settings.retry_budget_floor)
        self.pickers: dict[tuple[str, str], Picker] = {}
        self._local_errors, self._local_log_at = 0, 0.0  # see _out_of_resources

    def picker(self, service: str, balancer: str) -> Picker:
        """The picker of a service; kept across route rebuilds so its state survives."""
        key = (service, balancer)
        found = self.pickers.get(key)
        if found is None:
            found = self.pickers[key] = make_picker(balancer, self.stats)
        return found

    def choose(self, service: Service, picker: Picker, tried: list[str]) -> Instance | None:
        """The instance for the next attempt (:mod:`gateway.candidates`), or None."""
        passing = service.passing
        if not tried and len(passing) == 1:
            return passing[0]  # ejected or not: the panic threshold would keep it anyway
        now = time.monotonic()
        if not tried and now >= self.stats.ejections_end:
            return picker.pick(passing)  # nothing tried, nothing ejected: candidates' own answer
        ejected = frozenset(i.id for i in passing if self.stats.is_ejected(i.id, now))
        eligible = candidates(passing, self.settings.panic_threshold, ejected, tried).eligible
        return picker.pick(eligible) if eligible else None

    async def forward(
        self,
        req: Request,
        reply: Reply,
        record: Record,
        service: Service,
        balancer: str,
        head: bytes,
        body: bytes | None,
    ) -> None:
        """Answer *req* from an instance of *service*, noting the instances tried in *record*;
        raises Refusal when no instance could answer."""
        settings = self.settings
        started = time.monotonic()
        idempotent = req.method in _IDEMPOTENT or req.headers.idempotency_key
        picker = self.picker(service.name, balancer)
        tried: list[str] = []
        failure: Refusal | None = None  # made when an attempt fails: most requests need none
        for number in range(settings.max_attempts):
            instance = self.choose(service, picker, tried)
            remaining = settings.deadline - (time.monotonic() - started)
            if instance is None or remaining <= 0:
                break
            tried.append(instance.id)
            record.upstream, record.attempts = instance.id, len(tried)
            timeout = min(settings.try_timeout, remaining)
            attempt = Attempt(instance, head, body, timeout, idempotent, number)
            outcome = await self._attempt(req, reply, service, attempt, tried, failure)
            if outcome is None:
                return
            failure = outcome.refusal
            if not outcome.retry:
                break
        if failure is None:
            failure = _unreachable()
        failure.extra.update(service=service.name, attempts=len(tried))
        raise failure

    async def _attempt(
        self,
        req: Request,
        reply: Reply,
        service: Service,
        attempt: Attempt,
        tried: list[str],
        failure: Refusal | None,
    ) -> Failed | None:
        """One attempt: None once the client has the instance's answer; else how it failed
        and whether another instance may be tried."""
        instance = attempt.instance
        stats = self.stats.get(instance.id)
        with stats.track(self.stats.decay) as attempt.tracked:
            try:
                conn, answer = await self._send(req, attempt)
            # One name per clause: a compiled build (mypyc) types an "as" name by its first use.
            except LocalResourceError as short:
                raise self._out_of_resources(short) from None
            except ConnectFailed as refused:
                self.failed(service, instance, refused, req, eject_now=True)
                # Never sent: any method may go to another instance.
                retry = self._may_retry(attempt.number, service, tried, "connect_failed")
                return Failed(
                    Refusal(502, "upstream_unreachable", "no instance could be reached"), retry
                )
            except UpstreamTimeout as late:
                self.failed(service, instance, late, req)
                raise Refusal(
                    504, "upstream_timeout", "the instance did not answer in time",
                    service=service.name, attempts=len(tried),
                ) from None  # fmt: skip
            except UpstreamBadResponse as invalid:
                self.failed(service, instance, invalid, req)
                return Failed(
                    Refusal(502, "upstream_bad_response", "the instance sent an invalid answer"),
                    False,
                )
            except UpstreamBroken as broken:
                self.failed(service, instance, broken, req)
                retry = (
                    attempt.body is not None
                    and attempt.idempotent
                    and self._may_retry(attempt.number, service, tried, "connection_broken")
                )
                return Failed(
                    Refusal(502, "upstream_failed", "the connection to the instance broke"), retry
                )
            try:
                attempt.tracked.answered()
                status = answer.status
                if status >= 500:
                    self.failed(service, instance, None, req, status=status)
                elif stats.consecutive_failures:
                    self.stats.record_success(instance.id)
                if (
                    502 <= status <= 504
                    and attempt.body is not None
                    and may_retry_status(
                        req.method.decode("latin-1"), status, req.headers.idempotency_key
                    )
                    and self._may_retry(attempt.number, service, tried, f"status_{status}")
                ):
                    return Failed(failure or _unreachable(), True)
                # Not retried (or no retry left): the client gets the instance's own answer.
                await self._relay(reply, answer, service, instance)
                return None
            finally:
                self.pool.release(conn)

    async def _send(self, req: Request, attempt: Attempt) -> tuple[UpstreamConnection, Answer]:
        """Send *attempt* on a leased connection; the connection is given back on failure.

        A reused keep-alive connection the instance closed as the request went out is tried
        once more on a fresh one, if the request is safe to repeat (the instance may have
        read it) and its body is held.
        """
        pool, key = self.pool, attempt.key
        conn = pool.idle(key) or await pool.connect(key)
        timeout = attempt.timeout
        ends = time.monotonic() + timeout
        while True:
            try:
                if attempt.body is not None:
                    answer = conn.request(
                        attempt.head, attempt.body, timeout, req.method == b"HEAD"
                    )
                    await answer.head
                else:
                    answer = await self._stream(conn, req, attempt, timeout)
                return conn, answer
            except UpstreamBroken as exc:
                pool.release(conn)
                if not (exc.reused and attempt.body is not None and attempt.idempotent):
                    raise
            except BaseException:
                pool.release(conn)
                raise
            conn = await pool.connect(key)
            timeout = max(0.001, ends - time.monotonic())  # within the attempt's own time

    @staticmethod
    async def _stream(
        conn: UpstreamConnection, req: Request, attempt: Attempt, timeout: float
    ) -> Answer:
        """Send the client's body to the instance as it arrives."""
        body = req.body
        assert body is not None
        assert attempt.tracked is not None
        paced = ClientPaced(body.chunks(), attempt.tracked)
        chunked = req.content_length is None
        head_request = req.method == b"HEAD"
        return await conn.request_streamed(
            attempt.head, paced, chunked, timeout, head_request, body.stop
        )

    async def _relay(
        self, reply: Reply, answer: Answer, service: Service, instance: Instance
    ) -> None:
        debug = instance.id if self.settings.debug_headers else None
        lines = answer_lines(answer, reply.request.request_id, debug)
        if relay_now(reply, answer, lines):
            return
        try:
            await relay_stream(reply, answer, lines, self.settings.try_timeout)
        except UpstreamError as exc:
            self.failed(service, instance, exc, reply.request)

    def _may_retry(self, number: int, service: Service, tried: list[str], reason: str) -> bool:
        """A retry needs an attempt left, an instance not tried yet, and the budget's consent."""
        if number + 1 >= self.settings.max_attempts or len(service.passing) <= len(tried):
            return False
        if not self.budget.try_acquire():
            metrics.BUDGET_DENIED.inc()
            return False
        metrics.RETRIES.labels(service.name, reason).inc()
        return True

    def failed(
        self,
        service: Service,
        instance: Instance,
        error: UpstreamError | None,
        req: Request,
        eject_now: bool = False,
        status: int = 0,
    ) -> None:
        """Count a failed attempt against *instance*; eject it if that was one too many."""
        if error is not None:
            # The details stay in the log, with the request ID; the client gets our words.
            log.warning(
                "request %s to %s (%s:%d): %s",
                req.request_id, instance.id, instance.address, instance.port, error,
            )  # fmt: skip
        ids = [i.id for i in service.passing]
        reason = failure_reason(error, status)
        if self.stats.record_failure(instance.id, ids, eject_now=eject_now, reason=reason):
            metrics.EJECTIONS.labels(service.name).inc()
            self.pool.discard_host((instance.address, instance.port))

    def _out_of_resources(self, exc: LocalResourceError) -> Refusal:
        """The gateway itself is short of descriptors, buffers or ports: 503, counted, and
        logged at error level (once a second at most, as every request may meet it), with
        no instance blamed and no retry, which would meet the same shortage."""
        metrics.LOCAL_ERRORS.labels(exc.reason).inc()
        self._local_errors += 1
        now = time.monotonic()
        if now >= self._local_log_at:
            self._local_log_at = now + LOCAL_ERROR_LOG_EVERY
            log.error(
                "the gateway is out of a local resource: %s; %d request(s) answered 503 since "
                "the last such line (raise the open-files limit, ulimit -n, if it is EMFILE)",
                exc, self._local_errors,
            )  # fmt: skip
            self._local_errors = 0
        return Refusal(
            503, "gateway_out_of_resources",
            "the gateway is short of file descriptors or buffers; try again",
            (b"Retry-After: 1",),
        )  # fmt: skip


def _unreachable() -> Refusal:
    """The answer when no instance could be reached (or none answered better)."""
    return Refusal(502, "upstream_unreachable", "no instance could be reached")


class ClientPaced:
    """The client's body as it arrives; the waits for it are not the instance's latency."""

    __slots__ = ("_chunks", "_tracked")

    def __init__(self, chunks: AsyncIterator[bytes], tracked: Tracked) -> None:
        self._chunks, self._tracked = chunks, tracked

    def __aiter__(self) -> ClientPaced:
        return self

    async def __anext__(self) -> bytes:
        with self._tracked.waiting_for_client():
            try:
                data: bytes | None = await self._chunks.__anext__()
            except StopAsyncIteration:
                data = None  # the end of the body, not a fault of the client's
        if data is None:
            raise StopAsyncIteration
        return data
