"""Service-to-service calls through discovery: ``client.get("catalog", "/prices")``.

Uses the same snapshot and balancers as the gateway: only passing instances, power of two
choices by default, and a failed connection is retried on another instance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from discovery import logs, tracing
from discovery.balancer import DEFAULT_STRATEGY, Picker, make_picker
from discovery.errors import NoInstanceError
from discovery.model import Service
from discovery.settings import ConsulSettings
from discovery.stats import StatsTable
from discovery.watcher import CatalogWatcher

log = logging.getLogger(__name__)
# Methods whose repetition has the same effect as one call (RFC 9110 section 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True if the connection failed before the request left, so any method may be retried."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectTimeout) or isinstance(reason, NewConnectionError)


class ServiceClient:
    """Calls instances of other services; starts watching Consul on first use."""

    def __init__(
        self,
        consul: ConsulSettings,
        services: Iterable[str],
        strategy: str = DEFAULT_STRATEGY,
        timeout: float = 5.0,
        max_attempts: int = 3,
    ) -> None:
        self.watcher = CatalogWatcher(consul, services=services)
        self.stats = StatsTable()
        self.watcher.add_listener(self._observe)
        self._picker: Picker = make_picker(strategy, self.stats)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._local = threading.local()
        self._start_lock = threading.Lock()
        self._started = False
        self._ready_by = 0.0  # every caller waits for the first read until then, no longer

    def _observe(self, services: Mapping[str, Service]) -> None:
        """Let instances ejected for refused connections back once Consul sees them return."""
        self.stats.observe({i.id for svc in services.values() for i in svc.passing})

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _ensure_started(self) -> None:
        """Start watching on first use; every thread waits for the first read of the catalog.

        All callers share one window (``timeout`` from the start): before the first read, a
        call waits for it instead of failing with "no passing instance"; after the window, a
        Consul that never answered does not make every call wait again.
        """
        if not self._started:
            with self._start_lock:
                if not self._started:
                    self._ready_by = time.monotonic() + self.timeout
                    self.watcher.start()
                    self._started = True
        if not self.watcher.has_data:
            remaining = self._ready_by - time.monotonic()
            if remaining > 0:
                self.watcher.wait_ready(remaining)

    def request(self, service: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request to a passing instance of *service*; raise NoInstanceError if none.

        It carries the current request's ID and a child ``traceparent`` of its trace (see
        :mod:`discovery.tracing`), under any headers the caller gives.
        """
        self._ensure_started()
        kwargs.setdefault("timeout", self.timeout)
        attributes = {"http.request.method": method, "peer.service": service, "url.path": path}
        with tracing.client_span(f"{method} {service}", attributes) as trace_headers:
            request_id = logs.CONTEXT.get()[0]
            if request_id != "-":
                trace_headers["X-Request-ID"] = request_id
            kwargs["headers"] = {**trace_headers, **(kwargs.get("headers") or {})}
            return self._attempts(service, method, path, kwargs)

    def _attempts(
        self, service: str, method: str, path: str, kwargs: dict[str, Any]
    ) -> requests.Response:
        tried: set[str] = set()
        last_error: Exception = NoInstanceError(service)
        for _ in range(self.max_attempts):
            entry = self.watcher.services.get(service)
            now = time.monotonic()
            candidates = [
                i
                for i in (entry.passing if entry else ())
                if i.id not in tried and not self.stats.is_ejected(i.id, now)
            ]
            if not candidates:
                break
            instance = self._picker.pick(candidates)
            tried.add(instance.id)
            try:
                with self.stats.get(instance.id).track(self.stats.decay):
                    response = self._session().request(
                        method, f"http://{instance.address}:{instance.port}{path}", **kwargs
                    )
            except requests.ConnectionError as exc:
                self.stats.record_failure(
                    instance.id, [i.id for i in entry.passing] if entry else [], eject_now=True
                )
                last_error = exc
                log.warning("%s %s on %s failed: %s", method, path, instance.id, exc)
                if method.upper() in IDEMPOTENT_METHODS or _never_sent(exc):
                    continue
                raise
            self.stats.record_success(instance.id)
            return response
        raise last_error

    def get(self, service: str, path: str, **kwargs: Any) -> requests.Response:
        """``GET`` *path* on an instance of *service*."""
        return self.request(service, "GET", path, **kwargs)

    def close(self) -> None:
        """Stop watching Consul."""
        self.watcher.stop()
