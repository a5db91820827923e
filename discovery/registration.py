"""Registers one service instance in Consul, keeps it registered, and deregisters it.

The registration carries an HTTP check on the instance's ``/health``. Consul marks the check
critical until its first successful run, so the gateway never routes to an instance that has
not answered a health check yet.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import consul
import requests

from discovery.backoff import Backoff
from discovery.consul_client import make_client
from discovery.durations import format_duration
from discovery.errors import RegistrationError
from discovery.settings import ServiceSettings

log = logging.getLogger(__name__)

# What a failed call to the agent can raise: py-consul's errors and the transport's.
CONSUL_ERRORS = (consul.ConsulException, requests.RequestException, OSError)


class Stop(Protocol):
    """What ends the retries early: a ``threading.Event``, or a
    :class:`~discovery.stop_signals.StopSignals` in gunicorn's master."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Registrar:
    """Owns the Consul registration of one instance; gunicorn's master drives it."""

    def __init__(self, settings: ServiceSettings, client: consul.Consul | None = None) -> None:
        self.settings = settings
        self.service_id = settings.instance_id
        self._client = client or make_client(settings.consul)
        self._stop = threading.Event()
        # Held around deregistration and keepalive re-registration, so that a keepalive
        # racing with shutdown can never register the instance again after it left.
        self._lock = threading.Lock()
        self._keepalive: threading.Thread | None = None

    def definition(self) -> dict[str, Any]:
        """The keyword arguments of py-consul's ``agent.service.register``."""
        s = self.settings
        check = consul.Check.http(
            s.health_url,
            interval=format_duration(s.check_interval),
            timeout=format_duration(s.check_timeout),
            deregister=format_duration(s.deregister_after),
        )
        return {
            "name": s.name,
            "service_id": self.service_id,
            "address": s.address,
            "port": s.port,
            "tags": list(s.tags),
            "meta": dict(s.meta),
            "check": check,
            "replace_existing_checks": True,
        }

    def register_once(self, client: consul.Consul | None = None) -> None:
        """Register with the agent; raise what the agent or the transport raised."""
        if not (client or self._client).agent.service.register(**self.definition()):
            raise RegistrationError(f"Consul refused the registration of {self.service_id}")

    def register(self, stop: Stop | None = None) -> bool:
        """Register, retrying with backoff until ``register_timeout`` runs out, then raise.

        Return True once registered, or False as soon as *stop* is set (between two attempts
        the wait ends at once; an attempt under way ends within the client's timeout). A stop
        that comes during the attempt that succeeds still returns True: the caller, which
        sees ``stop.is_set()``, deregisters.
        """
        if stop is None:
            stop = threading.Event()  # never set: retry until registered or out of time
        deadline = time.monotonic() + self.settings.register_timeout
        backoff = Backoff(base=0.2, cap=5.0)
        while not stop.is_set():
            try:
                self.register_once()
            except consul.ACLPermissionDenied as exc:
                # A refusal is not an outage: retrying cannot help, and the fix is the token.
                raise RegistrationError(
                    f"Consul at {self.settings.consul.url} refused to register "
                    f"{self.service_id} ({exc}): check CONSUL_HTTP_TOKEN or "
                    f"CONSUL_HTTP_TOKEN_FILE; the token needs service:write on "
                    f"{self.settings.name!r}"
                ) from exc
            except consul.exceptions.BadRequest as exc:
                # 400: Consul found the registration itself invalid, and would again.
                raise RegistrationError(
                    f"Consul at {self.settings.consul.url} refused the registration of "
                    f"{self.service_id} as invalid ({exc}); this is a configuration error, "
                    "not an outage: fix the SERVICE_* setting it names (SERVICE_META, "
                    "SERVICE_TAGS, SERVICE_ADDRESS, SERVICE_CHECK_*), then start again"
                ) from exc
            except CONSUL_ERRORS as exc:
                delay = backoff.next_delay()
                if time.monotonic() + delay > deadline:
                    raise RegistrationError(
                        f"could not register {self.service_id} with Consul at "
                        f"{self.settings.consul.url} within "
                        f"{self.settings.register_timeout:g}s: {exc}"
                    ) from exc
                log.warning(
                    "registering %s failed (%s); retrying in %.1fs", self.service_id, exc, delay
                )
                stop.wait(delay)
            else:
                log.info(
                    "registered %s at %s:%d",
                    self.service_id,
                    self.settings.address,
                    self.settings.port,
                )
                return True
        log.info("stopped before %s was registered", self.service_id)
        return False

    def deregister(self) -> None:
        """Remove the instance from Consul; an instance Consul no longer knows is not an error."""
        self._stop.set()
        with self._lock:
            try:
                # py-consul turns Consul's 404 ("Unknown service ID") into False, not NotFound.
                removed = self._client.agent.service.deregister(self.service_id)
            except CONSUL_ERRORS as exc:
                log.warning("deregistering %s failed: %s", self.service_id, exc)
                return
            if removed:
                log.info("deregistered %s", self.service_id)
            else:
                log.info(
                    "%s was not registered any more (Consul answered 404); nothing to remove",
                    self.service_id,
                )

    def is_registered(self, client: consul.Consul | None = None) -> bool:
        """Whether the local agent still knows this instance (py-consul gives None on 404)."""
        found = (client or self._client).agent.service_definition(self.service_id)
        return found is not None

    def start_keepalive(self, period: float | None = None) -> None:
        """Re-register in the background whenever the agent forgets this instance."""
        period = period or max(1.0, min(10.0, self.settings.check_interval))
        self._keepalive = threading.Thread(
            target=self._keepalive_loop, args=(period,), name="consul-keepalive", daemon=True
        )
        self._keepalive.start()

    def _keepalive_loop(self, period: float) -> None:
        # A separate client: py-consul's requests.Session is not shared across threads.
        client = make_client(self.settings.consul)
        while not self._stop.wait(period):
            try:
                with self._lock:
                    if not self._stop.is_set() and not self.is_registered(client):
                        log.warning("Consul forgot %s; registering again", self.service_id)
                        self.register_once(client)
            except CONSUL_ERRORS as exc:
                log.debug("keepalive for %s: Consul unreachable (%s)", self.service_id, exc)
