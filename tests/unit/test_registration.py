"""Registration: an ACL refusal stops start-up at once and names the token variables; a stop
request ends the retries without waiting out the backoff."""

from __future__ import annotations

from typing import Any

import consul
import pytest
import requests

from discovery.errors import RegistrationError
from discovery.registration import Registrar
from discovery.settings import ServiceSettings


class Refusing:
    """A py-consul client whose agent answers every registration with 403."""

    def __init__(self) -> None:
        self.calls = 0
        self.agent = self
        self.service = self

    def register(self, **_: Any) -> bool:
        self.calls += 1
        raise consul.ACLPermissionDenied("Permission denied")


def test_an_acl_refusal_is_not_retried_and_names_the_token() -> None:
    client = Refusing()
    settings = ServiceSettings(name="catalog", port=8000, address="127.0.0.1", register_timeout=60)
    with pytest.raises(RegistrationError, match="CONSUL_HTTP_TOKEN") as raised:
        Registrar(settings, client).register()
    assert client.calls == 1
    assert "catalog" in str(raised.value)


class Unreachable:
    """A py-consul client whose agent never answers; it may ask *stop* to stop on a call."""

    def __init__(self, stop: StopAfter | None = None, answer: bool = False) -> None:
        self.calls = 0
        self.agent = self
        self.service = self
        self.stop = stop
        self.answer = answer

    def register(self, **_: Any) -> bool:
        self.calls += 1
        if self.stop is not None:
            self.stop.stopped = True  # a signal that lands while the call is under way
        if self.answer:
            return True
        raise requests.ConnectionError("connection refused")


class StopAfter:
    """A stop that records every wait and is set by the *n*-th one (never sleeps)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.waits: list[float | None] = []
        self.stopped = False

    def is_set(self) -> bool:
        return self.stopped

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.stopped = self.stopped or len(self.waits) >= self.n
        return self.stopped


SETTINGS = ServiceSettings(name="catalog", port=8000, address="127.0.0.1", register_timeout=60)


@pytest.mark.parametrize("n", [1, 3])
def test_a_stop_during_the_backoff_ends_the_retries_unregistered(n: int) -> None:
    stop = StopAfter(n)
    client = Unreachable()
    assert Registrar(SETTINGS, client).register(stop) is False
    assert client.calls == n
    assert len(stop.waits) == n
    assert all(t is not None and t > 0 for t in stop.waits)


def test_a_stop_before_the_first_attempt_makes_none() -> None:
    stop = StopAfter(1)
    stop.stopped = True
    client = Unreachable()
    assert Registrar(SETTINGS, client).register(stop) is False
    assert client.calls == 0


def test_a_stop_during_a_failing_attempt_does_not_wait_for_the_backoff() -> None:
    stop = StopAfter(100)
    client = Unreachable(stop)
    assert Registrar(SETTINGS, client).register(stop) is False
    assert client.calls == 1


def test_a_stop_during_the_attempt_that_succeeds_reports_it_registered() -> None:
    # The caller sees stop.is_set() and deregisters; returning False would leave it in Consul.
    stop = StopAfter(100)
    client = Unreachable(stop, answer=True)
    assert Registrar(SETTINGS, client).register(stop) is True
    assert stop.is_set()


class Invalid:
    """A py-consul client whose agent answers every registration with 400, as Consul does for
    Service Meta it refuses."""

    def __init__(self) -> None:
        self.calls = 0
        self.agent = self
        self.service = self

    def register(self, **_: Any) -> bool:
        self.calls += 1
        raise consul.exceptions.BadRequest(
            "400 Invalid Service Meta: Couldn't load metadata pair ('consul-x', '1'): "
            "Key prefix 'consul-' is reserved for internal use"
        )


def test_a_registration_consul_finds_invalid_stops_at_once_as_a_configuration_error() -> None:
    client = Invalid()
    stop = StopAfter(1000)
    with pytest.raises(RegistrationError, match="configuration error") as raised:
        Registrar(SETTINGS, client).register(stop)
    assert client.calls == 1
    assert stop.waits == []
    assert "Invalid Service Meta" in str(raised.value)
    assert "SERVICE_META" in str(raised.value)


class Forgetful:
    """A py-consul client whose agent no longer knows the instance: py-consul returns False
    for Consul's 404 on deregistration instead of raising."""

    def __init__(self) -> None:
        self.agent = self
        self.service = self

    def deregister(self, service_id: str) -> bool:
        return False


def test_deregistering_an_instance_consul_does_not_know_does_not_claim_it_was_removed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registrar = Registrar(SETTINGS, Forgetful())
    with caplog.at_level("INFO", logger="discovery.registration"):
        registrar.deregister()
    messages = [record.getMessage() for record in caplog.records]
    assert not any(message.startswith("deregistered") for message in messages), messages
    assert any("was not registered any more" in message for message in messages), messages
