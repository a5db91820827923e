"""Fixtures for the contract suite.

By default the suite starts the bundled registry (``registry/``, once the tests' "Consul
double", hence the fixture names) with short test-only timings. With
``--consul-addr`` or ``CONSUL_TEST_ADDR`` it runs unchanged against a real agent, for example

    docker run --rm --network host hashicorp/consul:1.16 agent -dev
    pytest tests/contract --consul-addr http://127.0.0.1:8500

(host networking, because the HTTP-check tests serve their check target on the host's
127.0.0.1). Against a real agent:

- reaping tests use Consul's real timings, read from /v1/agent/self (1 m minimum, 30 s reap
  interval), so they take a couple of minutes;
- ACL tests need a second agent started with ACLs on and default deny, given as
  ``CONSUL_CONTRACT_ACL_ADDR`` and its management token ``CONSUL_CONTRACT_ACL_TOKEN``;
  without them they are skipped;
- the tests of a first bootstrap need an agent whose ACLs were never bootstrapped, which only
  the double (started fresh for them) provides, and are skipped;
- the restart test needs the double (it restarts the process) and is skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import consul
import pytest

from registry.durations import DurationError, parse_duration
from registry.launcher import ConsulDouble, run_consul_double

from .acl_helpers import AclAdmin
from .helpers import Api, StatusServer

#: Short timings for the double; real Consul has 1m and 30s and accepts no such flags.
DOUBLE_ARGS = ("--test-min-deregister-after", "1s", "--test-reap-interval", "200ms")
ACL_TOKEN = "contract-management-token"


@dataclass(frozen=True)
class ConsulTarget:
    """The agent under test."""

    addr: str
    double: ConsulDouble | None
    min_deregister_after: float
    reap_interval: float

    @property
    def is_double(self) -> bool:
        """True when the suite started the double itself."""
        return self.double is not None


@pytest.fixture(scope="session")
def consul_target(external_consul_addr: str | None) -> Iterator[ConsulTarget]:
    """The double (default) or the external agent."""
    if external_consul_addr is None:
        with run_consul_double(None, *DOUBLE_ARGS) as double:
            yield _target(double.addr, double)
        return
    yield _target(external_consul_addr, None)


@pytest.fixture
def consul_target_addr(consul_target: ConsulTarget) -> str:
    """The target's base URL."""
    return consul_target.addr


@pytest.fixture
def api(consul_target: ConsulTarget) -> Iterator[Api]:
    """Plain HTTP access to the target."""
    with Api(consul_target.addr) as client:
        yield client


@pytest.fixture
def client(consul_target: ConsulTarget) -> Iterator[consul.Consul]:
    """A py-consul client for the target."""
    yield from _py_consul(consul_target.addr)


@pytest.fixture
def name() -> str:
    """A service name no other test uses."""
    return f"contract-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def registered(api: Api) -> Iterator[list[str]]:
    """Service IDs to deregister after the test (append them as you register)."""
    ids: list[str] = []
    yield ids
    for service_id in ids:
        api.put(f"/v1/agent/service/deregister/{service_id}")


@pytest.fixture
def check_target() -> Iterator[StatusServer]:
    """An HTTP server on 127.0.0.1 whose status code the test sets."""
    server = StatusServer()
    yield server
    server.close()


@pytest.fixture
def fresh_double(consul_target: ConsulTarget) -> Iterator[ConsulDouble]:
    """A double of the test's own, to stop and restart; needs the double."""
    if not consul_target.is_double:
        pytest.skip(
            "restarting needs the double; a real dev agent also starts empty when its data "
            "dir is a tmpfs, as in docker-compose.yml"
        )
    with run_consul_double(None, *DOUBLE_ARGS) as double:
        yield double


@dataclass(frozen=True)
class AclTarget:
    """An agent with ACLs enabled, default deny, and its management token."""

    addr: str
    token: str


@pytest.fixture(scope="session")
def acl_target(consul_target: ConsulTarget) -> Iterator[AclTarget]:
    """The double started with --acl-token, or the agent named by CONSUL_CONTRACT_ACL_*."""
    if consul_target.is_double:
        with run_consul_double(None, "--acl-token", ACL_TOKEN) as double:
            yield AclTarget(double.addr, ACL_TOKEN)
        return
    addr = os.environ.get("CONSUL_CONTRACT_ACL_ADDR")
    token = os.environ.get("CONSUL_CONTRACT_ACL_TOKEN")
    if not addr or not token:
        pytest.skip("set CONSUL_CONTRACT_ACL_ADDR and CONSUL_CONTRACT_ACL_TOKEN for ACL tests")
    yield AclTarget(addr.rstrip("/"), token)


@pytest.fixture
def manager(acl_target: AclTarget) -> Iterator[Api]:
    """Plain HTTP to the ACL agent with its management token."""
    with Api(acl_target.addr, acl_target.token) as api:
        yield api


@pytest.fixture
def acl_admin(manager: Api) -> Iterator[AclAdmin]:
    """Policies and tokens for one test, deleted after it."""
    admin = AclAdmin(manager)
    yield admin
    admin.close()


@pytest.fixture
def fresh_acl_double(consul_target: ConsulTarget) -> Iterator[ConsulDouble]:
    """A double with ACLs enabled and never bootstrapped (``--acl``); needs the double."""
    if not consul_target.is_double:
        pytest.skip("needs an agent whose ACLs were never bootstrapped; the double starts one")
    with run_consul_double(None, "--acl") as double:
        yield double


@pytest.fixture
def make_client() -> Iterator[Callable[..., consul.Consul]]:
    """Build extra py-consul clients (another address or token); all closed after the test."""
    made: list[consul.Consul] = []

    def make(addr: str, token: str | None = None) -> consul.Consul:
        parts = urlsplit(addr)
        made.append(
            consul.Consul(host=parts.hostname, port=parts.port, scheme=parts.scheme, token=token)
        )
        return made[-1]

    yield make
    for item in made:
        item.http.close()


def _py_consul(addr: str) -> Iterator[consul.Consul]:
    parts = urlsplit(addr)
    with consul.Consul(host=parts.hostname, port=parts.port, scheme=parts.scheme) as client:
        yield client


def _target(addr: str, double: ConsulDouble | None) -> ConsulTarget:
    with Api(addr) as api:
        answer = api.get("/v1/agent/self")
    # An agent with ACLs answers 403 without a token: keep Consul's own timings then.
    debug = answer.json().get("DebugConfig", {}) if answer.status_code == 200 else {}
    return ConsulTarget(
        addr=addr,
        double=double,
        min_deregister_after=_seconds(debug.get("CheckDeregisterIntervalMin"), 60.0),
        reap_interval=_seconds(debug.get("CheckReapInterval"), 30.0),
    )


def _seconds(value: object, default: float) -> float:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError:
            return default
    return default
