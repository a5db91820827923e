"""Without a token, the admin listener answers only to its own names (no DNS rebinding)."""

from __future__ import annotations

import pytest

from discovery.errors import SettingsError
from gateway.policy import admin_host_allowed
from gateway.settings import GatewaySettings

NAMES = frozenset({"gw-7", "gateway.internal"})


@pytest.mark.parametrize(
    "host",
    [
        b"127.0.0.1",
        b"127.0.0.1:9090",
        b"10.1.2.3:9090",
        b"[::1]",
        b"[::1]:9090",
        b"localhost",
        b"LOCALHOST:9090",
        b"localhost.:9090",
        b"admin.localhost:9090",
        b"gw-7:9090",
        b"gateway.internal",
        b"",  # no Host at all: HTTP/1.0, never a browser
    ],
)
def test_the_listeners_own_names_are_answered(host: bytes) -> None:
    assert admin_host_allowed(host, NAMES)


@pytest.mark.parametrize(
    "host",
    [
        b"evil.example",
        b"evil.example:9090",
        b"localhost.evil.example",
        b"gateway.internal.evil.example",
        b"127.0.0.1.nip.io:9090",
        b"[::1",
        b"[evil.example]",
        b"[127.0.0.1]",
        b"::1",
        b"localhost:port",
        b"localhost:99999999",
        b"127.0.0.1:9090:1",
        b"gw-7@evil.example",
    ],
)
def test_a_name_the_listener_does_not_own_is_refused(host: bytes) -> None:
    assert not admin_host_allowed(host, NAMES)


def test_admin_hosts_are_read_lowercased_without_a_final_dot() -> None:
    settings = GatewaySettings.from_env({"GATEWAY_ADMIN_HOSTS": "Gateway.Internal., gw-7"})
    assert settings.admin_hosts == NAMES


@pytest.mark.parametrize("value", ["gw:9090", "http://gw", "gw/x", "*.example", "a..b"])
def test_a_malformed_admin_host_names_its_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="GATEWAY_ADMIN_HOSTS"):
        GatewaySettings.from_env({"GATEWAY_ADMIN_HOSTS": value})
