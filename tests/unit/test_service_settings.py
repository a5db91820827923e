"""ServiceSettings: every sample-service variable parsed once, a bad one named."""

from __future__ import annotations

import pytest

from discovery.errors import SettingsError
from services.common.settings import ServiceSettings, known_apps

BASE = {"SERVICE_NAME": "catalog", "SERVICE_ADDRESS": "10.0.0.5"}
APPS = ["catalog", "echo", "quote"]


def settings(**env: str) -> ServiceSettings:
    return ServiceSettings.from_env({**BASE, **env}, apps=APPS)


def test_defaults_serve_the_named_service_on_every_address() -> None:
    s = settings()
    assert (s.name, s.app, s.port, s.bind, s.workers, s.threads) == (
        "catalog",
        "catalog",
        8000,
        "0.0.0.0",
        1,
        8,
    )
    assert s.wsgi_app == "services.catalog.app:create_app()"
    assert (s.access_log, s.trusted_hops) == (False, 1)


def test_service_app_serves_one_service_under_another_name() -> None:
    s = settings(SERVICE_NAME="flaky", SERVICE_APP="echo")
    assert (s.name, s.wsgi_app) == ("flaky", "services.echo.app:create_app()")
    assert s.instance_id.startswith("flaky-")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("yes", True), ("on", True), ("1", True), ("TRUE", True), ("no", False), ("off", False)],
)
def test_access_log_takes_every_documented_form(raw: str, expected: bool) -> None:
    assert settings(ACCESS_LOG=raw).access_log is expected


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ACCESS_LOG": "maybe"}, "ACCESS_LOG"),
        ({"SERVICE_NAME": ""}, "SERVICE_NAME"),
        ({"SERVICE_NAME": "orders"}, "SERVICE_NAME"),  # no services/orders/
        ({"SERVICE_APP": "nope"}, "SERVICE_APP"),
        ({"SERVICE_PORT": "http"}, "SERVICE_PORT"),
        ({"SERVICE_TRUSTED_HOPS": "-1"}, "SERVICE_TRUSTED_HOPS"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        ({"WEB_THREADS": "many"}, "WEB_THREADS"),
        ({"FAULT_ERROR_RATE": "2"}, "FAULT_ERROR_RATE"),
    ],
)
def test_a_bad_or_unknown_value_is_named(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=f"^{variable}:"):
        settings(**env)


def test_an_app_built_without_service_name_takes_its_own() -> None:
    s = ServiceSettings.from_env({"SERVICE_ADDRESS": "10.0.0.5"}, default_name="echo")
    assert (s.name, s.app) == ("echo", "echo")


def test_the_known_apps_are_the_folders_with_an_app_module() -> None:
    assert {"catalog", "echo", "quote"} <= set(known_apps())
    assert "common" not in known_apps()
