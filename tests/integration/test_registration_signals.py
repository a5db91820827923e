"""A service whose Consul never answers still stops at once on SIGTERM or SIGINT.

gunicorn acts on signals only after its ``when_ready`` hook returns, and that hook retries the
registration for up to SERVICE_REGISTER_TIMEOUT; the retries must end at the signal instead.
The 10-second bound is a failure deadline, far below the 60 s the master would otherwise take.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator

import pytest

from tests.integration.conftest import StartService
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def unreachable_consul() -> Iterator[str]:
    """An address on 127.0.0.1 that refuses connections: bound by this test, never listening."""
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{reserved.getsockname()[1]}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_service_retrying_its_registration_stops_at_once_on(
    sig: signal.Signals, start_service: StartService, unreachable_consul: str
) -> None:
    service = start_service(
        "echo", wait=False, CONSUL_HTTP_ADDR=unreachable_consul, SERVICE_REGISTER_TIMEOUT="60s"
    )
    wait_for(lambda: "retrying in" in service.log(), 30, "a failed registration attempt")

    service.signal(sig)
    assert service.popen is not None
    wait_for(lambda: service.popen.poll() is not None, 10, f"the master to exit on {sig.name}")

    log = service.log()
    assert service.popen.returncode == 0, log
    assert f"{sig.name} during start-up: stopping" in log
    assert "stopped before echo-" in log
    assert "discovery.registration: registered" not in log
    assert "Booting worker" not in log  # it stopped inside when_ready, before any worker
