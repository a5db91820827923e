"""Settings parsing: good values are read, and every bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.durations import format_duration, parse_duration
from discovery.errors import SettingsError
from discovery.settings import ConsulSettings, ServiceSettings
from gateway.settings import GatewaySettings

BASE = {"SERVICE_NAME": "catalog", "SERVICE_ADDRESS": "10.0.0.5", "SERVICE_PORT": "8001"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("500ms", 0.5), ("10s", 10.0), ("1m30s", 90.0), ("2h", 7200.0), ("1.5s", 1.5)],
)
def test_parse_duration_reads_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "10x", "1m 30s", "-1s", "ten seconds"])
def test_parse_duration_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_gives_whole_milliseconds() -> None:
    assert format_duration(1.5) == "1500ms"
    assert parse_duration(format_duration(0.25)) == 0.25


def test_service_settings_read_every_variable() -> None:
    env = {
        **BASE,
        "SERVICE_TAGS": "a, b,,c",
        "SERVICE_META": "version=v2, gateway-prefix=/shop",
        "SERVICE_CHECK_INTERVAL": "500ms",
        "SERVICE_CHECK_TIMEOUT": "250ms",
        "SERVICE_DEREGISTER_AFTER": "2m",
        "CONSUL_HTTP_ADDR": "consul:8501",
        "CONSUL_HTTP_TOKEN": "secret",
    }
    s = ServiceSettings.from_env(env)
    assert (s.name, s.address, s.port) == ("catalog", "10.0.0.5", 8001)
    assert s.tags == ("a", "b", "c")
    assert s.meta == {"version": "v2", "gateway-prefix": "/shop"}
    assert (s.check_interval, s.check_timeout, s.deregister_after) == (0.5, 0.25, 120.0)
    assert s.consul == ConsulSettings("http", "consul", 8501, "secret")
    assert s.health_url == "http://10.0.0.5:8001/health"
    assert s.instance_id.startswith("catalog-") and s.instance_id.endswith("-8001")


def test_service_settings_default_address_is_routable() -> None:
    s = ServiceSettings.from_env({"SERVICE_NAME": "echo"})
    assert s.address and s.port == 8000


def test_token_is_not_shown_in_repr() -> None:
    assert "secret" not in repr(ConsulSettings(token="secret"))


def test_consul_token_is_read_from_the_file_consul_http_token_file_names(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    path.write_text("from-a-file\n")
    settings = ConsulSettings.from_env({"CONSUL_HTTP_TOKEN_FILE": str(path)})
    assert settings.token == "from-a-file"


@pytest.mark.parametrize(
    ("content", "problem"), [(None, "cannot read"), ("", "is empty"), (" \n", "is empty")]
)
def test_a_missing_or_empty_consul_token_file_stops_startup_naming_the_variable(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match=rf"^CONSUL_HTTP_TOKEN_FILE: .*{problem}"):
        ServiceSettings.from_env({**BASE, "CONSUL_HTTP_TOKEN_FILE": str(path)})


def test_an_unreadable_consul_token_file_stops_startup_naming_the_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(SettingsError, match=r"^CONSUL_HTTP_TOKEN_FILE: cannot read"):
        ConsulSettings.from_env({"CONSUL_HTTP_TOKEN_FILE": str(tmp_path)})  # a directory


def test_a_consul_token_and_a_token_file_together_stop_startup(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-a-file")
    env = {"CONSUL_HTTP_TOKEN": "inline", "CONSUL_HTTP_TOKEN_FILE": str(path)}
    with pytest.raises(SettingsError, match="CONSUL_HTTP_TOKEN and CONSUL_HTTP_TOKEN_FILE"):
        ConsulSettings.from_env(env)


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"SERVICE_NAME": ""}, "SERVICE_NAME"),
        ({"SERVICE_NAME": "Bad_Name"}, "SERVICE_NAME"),
        ({"SERVICE_PORT": "http"}, "SERVICE_PORT"),
        ({"SERVICE_PORT": "70000"}, "SERVICE_PORT"),
        ({"SERVICE_META": "novalue"}, "SERVICE_META"),
        ({"SERVICE_META": "bad.key=1"}, "SERVICE_META"),
        ({"SERVICE_CHECK_INTERVAL": "often"}, "SERVICE_CHECK_INTERVAL"),
        ({"SERVICE_CHECK_TIMEOUT": "5s"}, "SERVICE_CHECK_TIMEOUT"),
        ({"SERVICE_DEREGISTER_AFTER": "0s"}, "SERVICE_DEREGISTER_AFTER"),
        ({"CONSUL_HTTP_ADDR": "ftp://consul"}, "CONSUL_HTTP_ADDR"),
        ({"CONSUL_HTTP_ADDR": "consul:port"}, "CONSUL_HTTP_ADDR"),
    ],
)
def test_bad_service_settings_name_the_variable(changes: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}: "):
        ServiceSettings.from_env({**BASE, **changes})


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ("consul-version=1", "'consul-version' starts with 'consul-'"),
        ("long=" + "v" * 513, "'long' is 513 bytes long; Consul takes at most 512"),
        ("accent=" + "é" * 257, "'accent' is 514 bytes long"),
        (",".join(f"k{n}=v" for n in range(65)), "65 key=value pairs; Consul takes at most 64"),
        ("k" * 129 + "=v", "is 129 characters long; Consul takes at most 128"),
    ],
)
def test_service_meta_consul_would_refuse_stops_startup_naming_the_variable(
    meta: str, reason: str
) -> None:
    with pytest.raises(SettingsError, match=r"^SERVICE_META: ") as raised:
        ServiceSettings.from_env({**BASE, "SERVICE_META": meta})
    assert reason in str(raised.value)


def test_service_meta_at_consuls_limits_is_accepted() -> None:
    pairs = [f"k{n}=v" for n in range(62)] + ["k" * 128 + "=v", "accent=" + "é" * 256]
    settings = ServiceSettings.from_env({**BASE, "SERVICE_META": ",".join(pairs)})
    assert len(settings.meta) == 64


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1:8500", ("http", "127.0.0.1", 8500)),
        ("http://consul:8500", ("http", "consul", 8500)),
        ("https://consul.example", ("https", "consul.example", 443)),
        ("consul", ("http", "consul", 8500)),
    ],
)
def test_consul_address_forms(raw: str, expected: tuple[str, str, int]) -> None:
    s = ConsulSettings.from_env({"CONSUL_HTTP_ADDR": raw})
    assert (s.scheme, s.host, s.port) == expected


def test_gateway_settings_defaults_and_overrides() -> None:
    default = GatewaySettings.from_env({})
    assert default.balancer == "least_outstanding"
    assert default.snapshot_file is None
    assert default.startup_wait == 5.0
    s = GatewaySettings.from_env(
        {
            "GATEWAY_BALANCER": "peak_ewma",
            "GATEWAY_TRY_TIMEOUT": "2s",
            "GATEWAY_SNAPSHOT_FILE": "/tmp/s.json",
        }
    )
    assert (s.balancer, s.try_timeout, str(s.snapshot_file)) == ("peak_ewma", 2.0, "/tmp/s.json")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GATEWAY_BALANCER": "fastest"}, "GATEWAY_BALANCER"),
        ({"GATEWAY_MAX_ATTEMPTS": "0"}, "GATEWAY_MAX_ATTEMPTS"),
        ({"GATEWAY_RETRY_BUDGET": "2"}, "GATEWAY_RETRY_BUDGET"),
        ({"GATEWAY_CONNECT_TIMEOUT": "soon"}, "GATEWAY_CONNECT_TIMEOUT"),
        # Longer would let gunicorn's 30 s worker timeout kill a worker that is still starting.
        ({"GATEWAY_STARTUP_WAIT": "25s"}, "GATEWAY_STARTUP_WAIT"),
    ],
)
def test_bad_gateway_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}: "):
        GatewaySettings.from_env(env)


def test_the_largest_rate_limit_gets_a_burst_the_limiter_accepts() -> None:
    from gateway.ratelimit import RateLimiter

    settings = GatewaySettings.from_env({"GATEWAY_RATE_LIMIT": "1000000"})
    RateLimiter(settings.rate_limit, settings.rate_burst)  # raises on a burst it refuses


def test_values_consul_raises_are_named_with_their_variable() -> None:
    settings = ServiceSettings.from_env(
        {**BASE, "SERVICE_CHECK_INTERVAL": "500ms", "SERVICE_CHECK_TIMEOUT": "200ms"}
        | {"SERVICE_DEREGISTER_AFTER": "10s"}
    )
    interval, deregister = settings.consul_adjustments()
    assert interval.startswith("SERVICE_CHECK_INTERVAL=0.5s is below Consul's minimum")
    assert "every 1s" in interval
    assert deregister.startswith("SERVICE_DEREGISTER_AFTER=10s is below Consul's minimum")
    assert "after 60s at the earliest" in deregister


def test_values_at_consuls_minimums_need_no_notice() -> None:
    settings = ServiceSettings.from_env(
        {**BASE, "SERVICE_CHECK_INTERVAL": "1s", "SERVICE_DEREGISTER_AFTER": "1m"}
    )
    assert settings.consul_adjustments() == []
