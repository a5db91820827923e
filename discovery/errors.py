"""Every exception the discovery library raises, in one place."""

from __future__ import annotations


class DiscoveryError(Exception):
    """Base class of the discovery library's errors."""


class SettingsError(DiscoveryError, ValueError):
    """An environment variable is missing or malformed; the message names it."""


class RegistrationError(DiscoveryError):
    """Consul did not accept the registration within the allowed time."""


class NoInstanceError(DiscoveryError):
    """A service has no passing instance to send a request to."""

    def __init__(self, service: str) -> None:
        super().__init__(f"no passing instance of service {service!r}")
        self.service = service
