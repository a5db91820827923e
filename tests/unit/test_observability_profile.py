"""The compose profile `observability`: off by default, pinned images, and Prometheus targets
that name real compose services on the ports they serve metrics on.

No image registry is reachable here, so the profile is checked as configuration; `make e2e`
runs the default stack, which this profile must leave unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from discovery.settings import ServiceSettings
from gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "observability"
PINNED = re.compile(r"^[a-z0-9./-]+:v?\d+\.\d+\.\d+$")  # an exact release, never `latest`


def load(path: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / path).read_text())
    assert isinstance(data, dict)
    return data


COMPOSE = load("docker-compose.yml")
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS = load("deploy/observability/prometheus.yml")


def test_the_profile_adds_a_trace_viewer_and_prometheus_and_nothing_else() -> None:
    profiled = {name for name, svc in SERVICES.items() if svc.get("profiles")}
    assert profiled == {"jaeger", "prometheus"}
    for name in profiled:
        assert SERVICES[name]["profiles"] == [PROFILE]


@pytest.mark.parametrize("name", ["jaeger", "prometheus"])
def test_profile_images_are_pinned_and_published_on_loopback_only(name: str) -> None:
    service = SERVICES[name]
    assert PINNED.match(service["image"]), service["image"]
    assert all(port.startswith("127.0.0.1:") for port in service.get("ports", []))


def test_components_send_spans_to_the_profiles_otlp_receiver() -> None:
    for name in ("catalog", "quote", "echo", "gateway"):
        env = SERVICES[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":-http://jaeger:4318}"), name
        assert env["OTEL_TRACES_EXPORTER"] == "${OTEL_TRACES_EXPORTER:-}", name  # opt-in


def test_prometheus_reads_the_mounted_config() -> None:
    mounts = SERVICES["prometheus"]["volumes"]
    assert "./deploy/observability/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]


def jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in PROMETHEUS["scrape_configs"]}


def targets(job: dict[str, Any]) -> list[tuple[str, int]]:
    return [(name, sd["port"]) for sd in job["dns_sd_configs"] for name in sd["names"]]


def test_service_targets_are_every_sample_service_on_its_port() -> None:
    job = jobs()["services"]
    port = ServiceSettings.from_env({"SERVICE_NAME": "catalog", "SERVICE_ADDRESS": "x"}).port
    assert sorted(targets(job)) == [(n, port) for n in ("catalog", "echo", "quote")]
    assert job["metrics_path"] == "/metrics"
    for name, _ in targets(job):
        assert name in SERVICES and not SERVICES[name].get("profiles")
        assert "SERVICE_PORT" not in SERVICES[name].get("environment", {})  # the default


def test_gateway_target_is_its_admin_listener_with_the_admin_token() -> None:
    job = jobs()["gateway"]
    gateway = SERVICES["gateway"]
    admin_port = GatewaySettings.from_env({}).admin_port
    assert targets(job) == [("gateway", admin_port)]
    assert f"127.0.0.1:{admin_port}:{admin_port}" in gateway["ports"]
    assert job["metrics_path"] == "/_gateway/metrics"
    # The token file Prometheus reads is the one the gateway reads, from the same volume.
    token = Path(job["authorization"]["credentials_file"])
    gateway_token = Path(gateway["environment"]["GATEWAY_ADMIN_TOKEN_FILE"])
    assert token.name == gateway_token.name
    volume = {
        m.split(":")[0] for m in gateway["volumes"] if m.split(":")[1] == str(gateway_token.parent)
    }
    assert f"{volume.pop()}:{token.parent}:ro" in SERVICES["prometheus"]["volumes"]
