"""Fixtures that start real processes: the Consul double, sample services and the gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from registry.launcher import ConsulDouble, free_port, run_consul_double
from tests.integration.harness import SERVICE_CONF, Process, gateway_env, service_env, stop_all

pytestmark = pytest.mark.integration

StartService = Callable[..., Process]


@pytest.fixture(scope="module")
def consul() -> Iterator[ConsulDouble]:
    """A fresh Consul double per test module, reaping critical services quickly."""
    with run_consul_double(
        None, "--test-min-deregister-after", "2s", "--test-reap-interval", "1s"
    ) as double:
        yield double


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def start_service(consul: ConsulDouble, log_dir: Path) -> Iterator[StartService]:
    """Start sample-service instances; all of them are stopped when the module ends."""
    started: list[Process] = []

    def start(name: str, wait: bool = True, port: int | None = None, **extra: str) -> Process:
        port = port or free_port()
        proc = Process(
            f"{name}-{port}",
            SERVICE_CONF,
            service_env(name, port, consul.addr, **extra),
            port,
            log_dir,
        )
        started.append(proc.start())
        if wait:
            proc.wait_http("/health")
        return proc

    yield start
    stop_all(started)


@pytest.fixture(scope="module")
def start_gateway(consul: ConsulDouble, log_dir: Path) -> Iterator[Callable[..., Process]]:
    """Start gateways; all of them are stopped when the module ends."""
    started: list[Process] = []

    def start(open_files: int | None = None, **extra: str) -> Process:
        port = free_port()
        proc = Process(
            f"gateway-{port}",
            "gateway/gunicorn.conf.py",
            gateway_env(port, consul.addr, **extra),
            port,
            log_dir,
            open_files=open_files,
        )
        started.append(proc.start())
        proc.wait_http("/_gateway/routes")
        return proc

    yield start
    stop_all(started)
