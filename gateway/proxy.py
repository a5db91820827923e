"""The proxy core: a bare WSGI callable that forwards ``/<service>/...`` to a passing instance.

This is the gateway's hot path, so it avoids frameworks: no Flask, no ``requests``; pooled
keep-alive sockets (:mod:`gateway.pool`), and ``http.client`` only to parse the answer. Per
request it does one dict lookup to route, one pick, and one write for a small request.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.client import HTTPException, HTTPResponse
from typing import Any
from urllib.parse import quote

from discovery.balancer import Picker, make_picker
from discovery.client import IDEMPOTENT_METHODS
from discovery.model import Instance, Service
from discovery.stats import InstanceStats, StatsTable
from discovery.watcher import CatalogWatcher
from gateway import metrics, responses
from gateway.headers import request_headers, response_headers
from gateway.pool import ConnectFailed, Connection, Pool
from gateway.retry import RetryBudget, may_retry_status
from gateway.routing import RouteTable
from gateway.settings import GatewaySettings
from gateway.upstream import (
    CHUNK,
    UpstreamBroken,
    UpstreamTimeout,
    chunked,
    drain,
    finish,
    read_chunks,
    send,
)

log = logging.getLogger(__name__)
BUFFER_LIMIT = 64 * 1024  # request bodies up to this size are held, so they can be retried
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Proxy:
    """Routes, balances, retries and streams; one instance per gateway worker process."""

    def __init__(self, settings: GatewaySettings, watcher: CatalogWatcher) -> None:
        self.settings = settings
        self.watcher = watcher
        self.stats = StatsTable(settings.ejection)
        self.pool = Pool(settings.connect_timeout)
        self.budget = RetryBudget(settings.retry_budget_ratio, settings.retry_budget_floor)
        self.routes = RouteTable([])
        self._pickers: dict[tuple[str, str], Picker] = {}
        self.on_services(watcher.services)
        watcher.add_listener(self.on_services)

    def on_services(self, services: Mapping[str, Service]) -> None:
        """Rebuild the route table when the snapshot changes (called by the watcher)."""
        self.routes = RouteTable.build(services, self.settings.balancer)
        metrics.set_last_sync(self.watcher.last_success)
        passing = {i.id for svc in services.values() for i in svc.passing}
        for instance_id in self.stats.observe(passing):
            log.info("%s is passing in Consul again; back in rotation", instance_id)

    def picker(self, service: str, balancer: str) -> Picker:
        """The picker of a service; kept across route rebuilds so its state survives."""
        key = (service, balancer)
        found = self._pickers.get(key)
        if found is None:
            found = self._pickers[key] = make_picker(balancer, self.stats)
        return found

    def __call__(
        self, environ: dict[str, Any], start_response: responses.StartResponse
    ) -> Iterable[bytes]:
        started = time.monotonic()
        labels = [metrics.UNROUTED]

        def counted_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            metrics.observe(labels[0], status, started)
            return start_response(status, headers, exc_info)

        return self._handle(environ, counted_start, labels)

    def _handle(
        self, environ: dict[str, Any], start_response: responses.StartResponse, labels: list[str]
    ) -> Iterable[bytes]:
        rid = environ.get("HTTP_X_REQUEST_ID", "")
        if not _REQUEST_ID.match(rid):
            rid = os.urandom(16).hex()  # as random as uuid4().hex, at a fifth of the cost
        path = environ.get("PATH_INFO") or "/"
        matched = self.routes.match(path)
        if matched is None:
            if not self.watcher.has_data:
                return responses.error(
                    start_response, 503, "not_synced",
                    "the gateway has not read the service catalog from Consul yet", rid,
                )  # fmt: skip
            return responses.error(
                start_response, 404, "unknown_service", f"no service is routed at {path}", rid
            )
        route, upstream_path = matched
        labels[0] = route.service
        service = self.watcher.services.get(route.service)
        if service is None or not service.passing:
            return responses.error(
                start_response, 503, "no_passing_instance",
                f"service {route.service!r} has no passing instance", rid, service=route.service,
            )  # fmt: skip
        try:
            body, length, chunked = _request_body(environ)
        except ValueError as exc:
            return responses.error(start_response, 400, "bad_request_body", str(exc), rid)
        method = environ["REQUEST_METHOD"]
        head = _head(
            method,
            _target(environ, route.prefix, upstream_path),
            environ,
            rid,
            route.prefix,
            length,
            chunked,
        )
        self.budget.record_request()
        return self._forward(
            environ, start_response, service, route.balancer, method, head, body, rid
        )

    def _forward(
        self,
        environ: dict[str, Any],
        start_response: responses.StartResponse,
        service: Service,
        balancer: str,
        method: str,
        head: bytes,
        body: bytes | Iterator[bytes],
        rid: str,
    ) -> Iterable[bytes]:
        deadline = time.monotonic() + self.settings.deadline
        keyed = "HTTP_IDEMPOTENCY_KEY" in environ
        replayable = isinstance(body, bytes)
        picker = self.picker(service.name, balancer)
        tried: set[str] = set()
        failure = (502, "upstream_unreachable", "no instance could be reached")
        for attempt in range(self.settings.max_attempts):
            instance = self._choose(service, picker, tried)
            remaining = deadline - time.monotonic()
            if instance is None or remaining <= 0:
                break
            tried.add(instance.id)
            stats = self.stats.get(instance.id)
            started = time.monotonic()
            stats.begin()
            try:
                conn, response = self._send(
                    instance, method, head, body, min(self.settings.try_timeout, remaining)
                )
            except ConnectFailed as exc:
                stats.end(time.monotonic() - started, self.stats.decay)
                self._failed(service, instance, eject_now=True)
                failure = (502, "upstream_unreachable", str(exc))
                if self._may_retry(attempt, service, tried, "connect_failed"):
                    continue  # never sent: any method may go to another instance
                break
            except UpstreamTimeout as exc:
                stats.end(time.monotonic() - started, self.stats.decay)
                self._failed(service, instance)
                return responses.error(
                    start_response, 504, "upstream_timeout", str(exc), rid, instance=instance.id
                )
            except UpstreamBroken as exc:
                stats.end(time.monotonic() - started, self.stats.decay)
                self._failed(service, instance)
                failure = (502, "upstream_failed", str(exc))
                safe = replayable and (method in IDEMPOTENT_METHODS or keyed)
                if safe and self._may_retry(attempt, service, tried, "connection_broken"):
                    continue
                break
            rtt = time.monotonic() - started
            status = response.status
            if status >= 500:
                self._failed(service, instance)
            else:
                self.stats.record_success(instance.id)
            if (
                replayable
                and may_retry_status(method, status, keyed)
                and self._may_retry(attempt, service, tried, f"status_{status}")
            ):
                drain(conn, response, self.pool)
                stats.end(rtt, self.stats.decay)
                continue
            # Not retried (or no retry left): the client gets the instance's own answer.
            return self._relay(start_response, conn, response, instance, rid, stats, rtt, method)
        code, error_code, detail = failure
        return responses.error(
            start_response, code, error_code, detail, rid, service=service.name, attempts=len(tried)
        )

    def _may_retry(self, attempt: int, service: Service, tried: set[str], reason: str) -> bool:
        """A retry needs an attempt left, an instance not tried yet, and the budget's consent."""
        if attempt + 1 >= self.settings.max_attempts or len(service.passing) <= len(tried):
            return False
        if not self.budget.try_acquire():
            metrics.BUDGET_DENIED.inc()
            return False
        metrics.RETRIES.labels(service.name, reason).inc()
        return True

    def _choose(self, service: Service, picker: Picker, tried: set[str]) -> Instance | None:
        """Pick among passing, untried, non-ejected instances, with a panic threshold.

        When fewer than ``panic_threshold`` of the passing instances are left after ejection,
        ejection is ignored (as in Envoy): spreading load over every instance beats piling it
        onto a few. Untried ejected instances are also the last resort before failing.
        """
        now = time.monotonic()
        passing = service.passing
        ejected = {i.id for i in passing if self.stats.is_ejected(i.id, now)}
        if ejected and len(passing) - len(ejected) < self.settings.panic_threshold * len(passing):
            ejected = set()
        candidates = [i for i in passing if i.id not in tried and i.id not in ejected]
        if not candidates:
            candidates = [i for i in passing if i.id not in tried]
        return picker.pick(candidates) if candidates else None

    def _send(
        self,
        instance: Instance,
        method: str,
        head: bytes,
        body: bytes | Iterator[bytes],
        timeout: float,
    ) -> tuple[Connection, HTTPResponse]:
        key = (instance.address, instance.port)
        try:
            return send(self.pool, key, method, head, body, timeout)
        except UpstreamBroken as exc:
            if not exc.stale or not isinstance(body, bytes):
                raise
        # A reused connection the instance had already closed: try once on a new one.
        return send(self.pool, key, method, head, body, timeout)

    def _failed(self, service: Service, instance: Instance, eject_now: bool = False) -> None:
        ids = [i.id for i in service.passing]
        if self.stats.record_failure(instance.id, ids, eject_now=eject_now):
            metrics.EJECTIONS.labels(service.name).inc()
            self.pool.discard_host((instance.address, instance.port))

    def _relay(
        self,
        start_response: responses.StartResponse,
        conn: Connection,
        response: HTTPResponse,
        instance: Instance,
        rid: str,
        stats: InstanceStats,
        rtt: float,
        method: str,
    ) -> Iterable[bytes]:
        extra = [("X-Request-ID", rid), ("X-Upstream-Instance", instance.id)]
        headers = response_headers(response.getheaders(), extra)
        start_response(responses.status_line(response.status, response.reason), headers)
        if method == "HEAD" or (response.length is not None and response.length <= BUFFER_LIMIT):
            try:
                data = response.read()
            except (OSError, HTTPException):
                conn.close()
                stats.end(rtt, self.stats.decay)
                raise
            finish(conn, response, self.pool)
            stats.end(rtt, self.stats.decay)
            return [data]
        return _Streamed(conn, response, self.pool, lambda: stats.end(rtt, self.stats.decay))


class _Streamed:
    """A large upstream body, passed on chunk by chunk; ``close`` releases the connection."""

    def __init__(
        self, conn: Connection, response: HTTPResponse, pool: Pool, done: Callable[[], None]
    ) -> None:
        self.conn, self.response, self.pool, self.done = conn, response, pool, done
        self.complete = False

    def __iter__(self) -> Iterator[bytes]:
        # read1 returns what has arrived (up to CHUNK), so streamed answers are not held back.
        while data := self.response.read1(CHUNK):
            yield data
        self.complete = True

    def close(self) -> None:
        if self.complete:
            finish(self.conn, self.response, self.pool)
        else:
            self.conn.close()  # the client went away mid-body: the connection is unusable
        self.done()


def _request_body(environ: Mapping[str, Any]) -> tuple[bytes | Iterator[bytes], int | None, bool]:
    """The body to send: bytes if small enough to hold, else a stream; with its framing."""
    raw_length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return chunked(read_chunks(stream, None)), None, True
    if not raw_length:
        return b"", None, False
    if not raw_length.isdigit():
        raise ValueError(f"Content-Length must be a number of bytes, got {raw_length!r}")
    length = int(raw_length)
    if length <= BUFFER_LIMIT:
        data = stream.read(length) if length else b""
        if len(data) != length:
            raise ValueError("the client sent less body than its Content-Length")
        return data, length, False
    return read_chunks(stream, length), length, False


def _target(environ: Mapping[str, Any], prefix: str, upstream_path: str) -> str:
    """The request target upstream, keeping the client's own percent-encoding when possible."""
    raw: str = environ.get("RAW_URI", "")
    if raw.startswith(prefix) and raw[len(prefix) : len(prefix) + 1] in ("", "/", "?"):
        rest = raw[len(prefix) :]
        return rest if rest.startswith("/") else "/" + rest
    query = environ.get("QUERY_STRING")
    path = quote(upstream_path.encode("latin-1"), safe="/:@!$&'()*+,;=~-._")
    return f"{path}?{query}" if query else path


def _head(
    method: str,
    target: str,
    environ: Mapping[str, Any],
    rid: str,
    prefix: str,
    length: int | None,
    chunked: bool,
) -> bytes:
    """The request line and headers, encoded once and reused by every attempt."""
    lines = [f"{method} {target} HTTP/1.1"]
    headers = request_headers(environ, rid, prefix)
    if "HTTP_HOST" not in environ:
        lines.append(f"Host: {environ.get('SERVER_NAME', 'gateway')}")
    lines += [f"{name}: {value}" for name, value in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
