"""The agent: turns registrations into catalog records and keeps their checks running.

This is the part of Consul's agent/agent.go the registry needs: ``addServiceInternal`` (check IDs
``service:<id>`` or ``service:<id>:<n>``, default name "Service '<name>' check", new checks
critical unless a Status is given, a re-registered check keeps its status),
``addCheckLocked``, ``removeService``, ``updateTTLCheck``, service maintenance and the reaper
pass ``reapServicesInternal``. Compound operations hold the store lock so they are atomic.
An HTTP or TCP interval under 1 s, and a DeregisterCriticalServiceAfter under the minimum
(1 m), are raised as Consul's ``addCheck`` raises them, with its warning lines; the check's
``Interval`` still shows what was asked, as Consul's does.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from .decode import CheckRegistration, ServiceRegistration
from .durations import format_duration
from .errors import ApiError, not_found
from .model import (
    CRITICAL,
    DEFAULT_MAINT_REASON,
    DEFAULT_NODE_MAINT_REASON,
    NODE_MAINT_ID,
    NODE_MAINT_NAME,
    SERVICE_MAINT_NAME,
    SERVICE_MAINT_PREFIX,
    Check,
    Service,
)
from .runners import MIN_INTERVAL, Runner, TtlRunner, runner_for
from .store import Store

log = logging.getLogger(__name__)


class Agent:
    """Registrations, check runners and reaping on top of one ``Store``."""

    def __init__(self, store: Store, min_deregister_after: float) -> None:
        self.store = store
        self._min_deregister_after = min_deregister_after
        self._runners: dict[str, Runner] = {}

    def add_service(self, registration: ServiceRegistration, replace_existing: bool) -> None:
        """Register or update a service and its checks (``PUT /v1/agent/service/register``)."""
        service = registration.service
        service.tagged_addresses = _default_tagged_addresses(service)
        many = len(registration.checks) > 1
        with self.store.lock:
            checks = []
            for number, spec in enumerate(registration.checks, start=1):
                check_id = spec.check_id or f"service:{service.service_id}"
                if not spec.check_id and many:
                    check_id += f":{number}"
                checks.append(self._new_check(spec, check_id, service))
            current = {
                c.check_id for c in self.store.checks() if c.service_id == service.service_id
            }
            drop = current - {c.check_id for c in checks} if replace_existing else set()
            self.store.register_service(service, checks, drop)
            for check_id in drop:
                self._stop_runner(check_id)
            for check in checks:
                self._start_runner(check)

    def remove_service(self, service_id: str) -> None:
        """Deregister a service with all of its checks."""
        with self.store.lock:
            for check in self.store.checks():
                if check.service_id == service_id:
                    self._stop_runner(check.check_id)
            self.store.deregister_service(service_id)

    def add_check(self, registration: CheckRegistration) -> None:
        """Register or update a check (``PUT /v1/agent/check/register``)."""
        with self.store.lock:
            service = None
            if registration.service_id:
                service = self.store.service(registration.service_id)
                if service is None:
                    raise not_found(f'ServiceID "{registration.service_id}" does not exist')
            check_id = registration.check_id or registration.name
            self.store.put_check(self._new_check(registration, check_id, service))
            self._start_runner(self.store.check(check_id))

    def remove_check(self, check_id: str) -> None:
        """Deregister one check."""
        with self.store.lock:
            self._stop_runner(check_id)
            self.store.remove_check(check_id)

    def update_ttl(self, check_id: str, status: str, output: str) -> None:
        """Set a TTL check's status and re-arm its TTL (pass, warn, fail and update)."""
        with self.store.lock:
            runner = self._runners.get(check_id)
            if not isinstance(runner, TtlRunner):
                raise ApiError(500, f'CheckID "{check_id}" does not have associated TTL')
            runner.set_status(status, output)

    def set_maintenance(self, service_id: str, enable: bool, reason: str) -> None:
        """Add or remove the critical ``_service_maintenance:<id>`` check."""
        with self.store.lock:
            service = self.store.service(service_id)
            if service is None:
                raise not_found(f'No service registered with ID "{service_id}"')
            check_id = SERVICE_MAINT_PREFIX + service_id
            exists = self.store.check(check_id) is not None
            if enable and not exists:
                maintenance = Check(
                    check_id=check_id,
                    name=SERVICE_MAINT_NAME,
                    notes=reason or DEFAULT_MAINT_REASON,
                    service_id=service.service_id,
                    service_name=service.name,
                    service_tags=list(service.tags),
                    check_type="maintenance",
                )
                self.store.put_check(maintenance)
                log.info("Service entered maintenance mode: service=%s", service_id)
            elif not enable and exists:
                self.store.remove_check(check_id)
                log.info("Service left maintenance mode: service=%s", service_id)

    def set_node_maintenance(self, enable: bool, reason: str) -> None:
        """Add or remove the critical ``_node_maintenance`` node check (EnableNodeMaintenance)."""
        with self.store.lock:
            exists = self.store.check(NODE_MAINT_ID) is not None
            if enable and not exists:
                maintenance = Check(
                    check_id=NODE_MAINT_ID,
                    name=NODE_MAINT_NAME,
                    notes=reason or DEFAULT_NODE_MAINT_REASON,
                    check_type="maintenance",
                )
                self.store.put_check(maintenance)
                log.info("Node entered maintenance mode")
            elif not enable and exists:
                self.store.remove_check(NODE_MAINT_ID)
                log.info("Node left maintenance mode")

    def reap_once(self) -> None:
        """Deregister services with a check critical for longer than its deregister timeout."""
        now = time.monotonic()
        with self.store.lock:
            victims: dict[str, str] = {}
            for check in self.store.checks():
                since, after = check.critical_since, check.reap_after
                if not check.service_id or since is None or after is None:
                    continue
                if now - since > after:
                    victims.setdefault(check.service_id, check.check_id)
            for service_id, check_id in victims.items():
                self.remove_service(service_id)
                log.info(
                    "Check for service has been critical for too long; deregistered service:"
                    " service=%s check=%s",
                    service_id,
                    check_id,
                )

    def stop(self) -> None:
        """Stop every check runner."""
        with self.store.lock:
            for runner in self._runners.values():
                runner.stop()
            self._runners.clear()

    def _new_check(
        self, registration: CheckRegistration, check_id: str, service: Service | None
    ) -> Check:
        spec = registration.spec
        check = Check(
            check_id=check_id,
            name=registration.name or (f"Service '{service.name}' check" if service else ""),
            status=registration.status or CRITICAL,
            notes=registration.notes,
            service_id=service.service_id if service else "",
            service_name=service.name if service else "",
            service_tags=list(service.tags) if service else [],
            check_type=spec.kind,
            interval=format_duration(spec.interval_ns) if spec.interval_ns else "",
            timeout=format_duration(spec.timeout_ns) if spec.timeout_ns else "",
            spec=spec,
        )
        if spec.kind in ("http", "tcp") and spec.interval_ns < MIN_INTERVAL * 1e9:
            # The runner raises it; Consul's addCheck logs the same line as it raises it.
            log.warning(
                "check has interval below minimum: check=%s minimum_interval=%s",
                check_id,
                format_duration(int(MIN_INTERVAL * 1e9)),
            )
        if spec.deregister_after_ns > 0:
            check.reap_after = max(spec.deregister_after_ns / 1e9, self._min_deregister_after)
            if spec.deregister_after_ns / 1e9 < self._min_deregister_after:
                log.warning(
                    "check has deregister interval below minimum: check=%s minimum_interval=%s",
                    check_id,
                    format_duration(round(self._min_deregister_after * 1e9)),
                )
        previous = self.store.check(check_id)
        if previous is not None:
            # A re-registered check keeps its current status instead of flapping.
            check.status, check.output = previous.status, previous.output
            check.critical_since = previous.critical_since
        return check

    def _start_runner(self, check: Check | None) -> None:
        if check is None or check.spec is None:
            return
        self._stop_runner(check.check_id)
        runner = runner_for(check.check_id, check.spec, self._on_result)
        if runner is not None:
            self._runners[check.check_id] = runner
            runner.start()

    def _stop_runner(self, check_id: str) -> None:
        runner = self._runners.pop(check_id, None)
        if runner is not None:
            runner.stop()

    def _on_result(self, runner: Runner, status: str, output: str) -> None:
        with self.store.lock:
            if self._runners.get(runner.check_id) is runner:
                self.store.set_status(runner.check_id, status, output)


def _default_tagged_addresses(service: Service) -> dict[str, dict[str, object]]:
    # addServiceInternal adds lan/wan tagged addresses for a literal IP service address.
    tagged = dict(service.tagged_addresses)
    try:
        version = ipaddress.ip_address(service.address).version
    except ValueError:
        return tagged
    suffix = "ipv4" if version == 4 else "ipv6"
    for kind in ("lan", "wan"):
        tagged.setdefault(f"{kind}_{suffix}", {"Address": service.address, "Port": service.port})
    return tagged
