"""Who may do what, replayed the way the security review attacked (issue 9's findings).

Each test is named for the finding it closes. Requests go over raw sockets or plain HTTP to a
real gateway in front of a real echo service; the gateway keeps serving ordinary requests
throughout.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from registry.launcher import ConsulDouble, free_port
from tests.integration.conftest import StartService
from tests.integration.harness import (
    SERVICE_CONF,
    Process,
    gateway_env,
    passing_ids,
    service_env,
    wait_for,
)
from tests.integration.hostile_upstream import HostileUpstream, plain
from tests.integration.rawhttp import Answer, RawConnection, request

pytestmark = pytest.mark.integration
TOKEN = "test-admin-token-7f3a"
KNOB_PATHS = [
    "/echo/admin/faults",
    "/echo//admin/faults",
    "/echo/%61dmin/faults",
    "/echo/ADMIN/faults",
    "/echo/admin",
]


@pytest.fixture(scope="module")
def echo(start_service: StartService, consul: ConsulDouble) -> Process:
    proc = start_service("echo")
    wait_for(lambda: passing_ids(consul.addr, "echo"), 15, "a passing echo instance")
    return proc


def routed(start_gateway: Callable[..., Process], **env: str) -> Process:
    gw = start_gateway(**env)
    wait_for(lambda: requests.get(f"{gw.url}/echo/", timeout=2).ok, 10, "a route to echo")
    return gw


@pytest.fixture(scope="module")
def gateway(
    start_gateway: Callable[..., Process], echo: Process, tmp_path_factory: pytest.TempPathFactory
) -> Process:
    token_file = tmp_path_factory.mktemp("secrets") / "admin-token"
    token_file.write_text(TOKEN + "\n")
    # The defaults users get, but for the admin token: no detail, no debug headers.
    return routed(
        start_gateway,
        GATEWAY_ADMIN_DETAIL="false",
        GATEWAY_ADMIN_TOKEN_FILE=str(token_file),
        WEB_CONCURRENCY="1",
    )


# -- finding 1: fault knobs open to the world ---------------------------------------------


@pytest.mark.parametrize("path", KNOB_PATHS)
def test_finding_1_fault_knobs_are_not_routed(gateway: Process, echo: Process, path: str) -> None:
    attack = requests.put(f"{gateway.url}{path}", json={"fail_health": True}, timeout=5)
    assert attack.status_code == 404
    assert attack.json()["error"] == "not_routed"
    knobs = requests.get(f"{echo.url}/admin/faults", timeout=5).json()
    assert knobs["fail_health"] is False
    assert requests.get(f"{gateway.url}/echo/", timeout=5).status_code == 200


def test_finding_1_an_operator_may_opt_a_service_in(
    start_gateway: Callable[..., Process], echo: Process
) -> None:
    gw = routed(start_gateway, GATEWAY_EXPOSE_ADMIN="echo")
    seen = requests.get(f"{gw.url}/echo/admin/faults", timeout=5)
    assert seen.status_code == 200 and "fail_health" in seen.json()


# -- finding 2: client headers steering routing or the scheme ------------------------------


def test_finding_2_a_script_name_header_cannot_change_the_route(gateway: Process) -> None:
    reply = request(
        gateway.port, b"GET /echo/catalog/items HTTP/1.1\r\nHost: gw\r\nSCRIPT_NAME: /echo\r\n\r\n"
    )
    assert isinstance(reply, Answer) and reply.status == 200
    assert reply.json()["path"] == "/catalog/items"  # echo answered, with the path it got
    admin = request(
        gateway.port, b"GET /zzz/_gateway/routes HTTP/1.1\r\nHost: gw\r\nSCRIPT_NAME: /zzz\r\n\r\n"
    )
    assert isinstance(admin, Answer) and admin.status == 404


def test_finding_2_forwarding_headers_from_a_client_are_not_believed(gateway: Process) -> None:
    seen = requests.get(
        f"{gateway.url}/echo/",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.9.9"},
        timeout=5,
    ).json()["headers"]
    headers = {k.lower(): v for k, v in seen.items()}
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"


def test_finding_2_behind_a_trusted_proxy_its_headers_count(
    start_gateway: Callable[..., Process], echo: Process
) -> None:
    gw = routed(start_gateway, GATEWAY_TRUSTED_HOPS="1")
    seen = requests.get(
        f"{gw.url}/echo/",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.4"},
        timeout=5,
    ).json()["headers"]
    headers = {k.lower(): v for k, v in seen.items()}
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-for"] == "198.51.100.4, 127.0.0.1"


# -- finding 3: the admin API tells strangers everything -----------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /_gateway/routes HTTP/1.1\r\nHost: gw\r\n\r\n",
        b"GET /%5Fgateway/routes HTTP/1.1\r\nHost: gw\r\n\r\n",
        b"GET /%5fgateway/health HTTP/1.1\r\nHost: gw\r\n\r\n",
        b"GET http://gw/_gateway/routes HTTP/1.1\r\nHost: gw\r\n\r\n",
    ],
)
def test_finding_3_the_public_listener_serves_no_admin_api(gateway: Process, raw: bytes) -> None:
    reply = request(gateway.port, raw)
    assert isinstance(reply, Answer) and reply.status in (400, 404)
    assert b"services" not in reply.body and b"stale" not in reply.body


def test_finding_3_the_admin_api_needs_its_token_except_for_health(gateway: Process) -> None:
    url = f"{gateway.admin_url}/_gateway/routes"
    assert requests.get(url, timeout=5).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    right = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert right.status_code == 200
    health = requests.get(f"{gateway.admin_url}/_gateway/health", timeout=5)
    assert health.status_code == 200
    assert "127.0.0.1" not in health.text and "consul" not in health.text.lower()


def test_finding_3_routes_list_no_addresses_unless_detail_is_on(gateway: Process) -> None:
    body = requests.get(
        f"{gateway.admin_url}/_gateway/routes",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    ).text
    echo = next(s for s in json.loads(body)["services"] if s["service"] == "echo")
    assert echo["passing"] >= 1 and echo["prefix"] == "/echo"
    assert "127.0.0.1" not in body and "echo-" not in body  # no addresses, no instance IDs


def test_finding_3_answers_carry_no_instance_and_errors_no_addresses(
    gateway: Process, consul: ConsulDouble
) -> None:
    answer = requests.get(f"{gateway.url}/echo/", timeout=5)
    assert "X-Upstream-Instance" not in answer.headers
    port = free_port()  # nothing listens there: connecting is refused
    requests.put(
        f"{consul.addr}/v1/agent/service/register",
        json={"Name": "gone", "ID": f"gone-{port}", "Address": "127.0.0.1", "Port": port,
              "Check": {"TTL": "30m", "Status": "passing"}},
        timeout=5,
    ).raise_for_status()  # fmt: skip
    # A list: a Response with an error status is itself falsy.
    (failed,) = wait_for(
        lambda: (
            [r]
            if (r := requests.get(f"{gateway.url}/gone/x", timeout=5)).status_code == 502
            else None
        ),
        10,
        "a 502 from a refused instance",
    )
    assert str(port) not in failed.text and "Errno" not in failed.text
    assert "127.0.0.1" not in failed.text
    requests.put(f"{consul.addr}/v1/agent/service/deregister/gone-{port}", timeout=5)


def admin_get(gateway: Process, host: bytes, token: str | None = None) -> Answer:
    """GET /_gateway/routes on the admin listener, addressed to *host*."""
    auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
    port = int(gateway.env["GATEWAY_ADMIN_PORT"])
    raw = b"GET /_gateway/routes HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (host, auth)
    reply = request(port, raw)
    assert isinstance(reply, Answer), reply
    return reply


def test_without_a_token_the_admin_api_answers_only_to_its_own_names(
    start_gateway: Callable[..., Process], echo: Process
) -> None:
    # A page on evil.example whose name now resolves to 127.0.0.1 (DNS rebinding) sends its
    # own name as Host: without a token, nothing else stands between it and the admin API.
    gw = start_gateway(WEB_CONCURRENCY="1", GATEWAY_ADMIN_HOSTS="gateway.internal")
    port = gw.env["GATEWAY_ADMIN_PORT"].encode()
    for evil in (b"evil.example:" + port, b"evil.example", b"localhost.evil.example:" + port):
        refused = admin_get(gw, evil)
        assert (refused.status, refused.error_code()) == (421, "misdirected_request")
        assert b"services" not in refused.body
    for own in (b"127.0.0.1:" + port, b"localhost:" + port, b"[::1]:" + port, b"gateway.internal"):
        assert admin_get(gw, own).status == 200, own


def test_with_a_token_the_admin_api_takes_any_host_name(gateway: Process) -> None:
    # Behind a load balancer or Prometheus' service discovery: the token is what counts.
    assert admin_get(gateway, b"gateway.example").status == 401
    assert admin_get(gateway, b"gateway.example", TOKEN).status == 200


# -- finding 4: anyone who can write to Consul takes routes --------------------------------


def test_finding_4_a_registration_cannot_take_another_services_prefix(
    gateway: Process, consul: ConsulDouble
) -> None:
    with HostileUpstream(plain) as thief:
        requests.put(
            f"{consul.addr}/v1/agent/service/register",
            json={"Name": "aaa", "ID": "aaa-1", "Address": "127.0.0.1", "Port": thief.port,
                  "Meta": {"gateway-prefix": "/echo"}, "Check": {"TTL": "30m", "Status": "passing"}},
            timeout=5,
        ).raise_for_status()  # fmt: skip
        wait_for(lambda: requests.get(f"{gateway.url}/aaa/x", timeout=5).ok, 10, "aaa routed")
        for _ in range(10):
            assert requests.get(f"{gateway.url}/echo/", timeout=5).json()["path"] == "/"
        assert thief.count("GET", "/") == 0
        requests.put(f"{consul.addr}/v1/agent/service/deregister/aaa-1", timeout=5)


def test_finding_4_instances_outside_the_allowed_ranges_are_not_routed(
    start_gateway: Callable[..., Process], echo: Process
) -> None:
    gw = start_gateway(GATEWAY_UPSTREAM_CIDRS="10.0.0.0/8")
    answer = requests.get(f"{gw.url}/echo/", timeout=5)
    assert answer.status_code == 503 and answer.json()["error"] == "no_passing_instance"


# -- finding 6: the metrics folder ----------------------------------------------------------


def test_finding_6_the_gateway_deletes_only_the_metrics_folder_it_made(
    start_gateway: Callable[..., Process], echo: Process, tmp_path: Path
) -> None:
    keep = tmp_path / "someone-elses-file"
    keep.write_text("keep me")
    gw = start_gateway(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert requests.get(f"{gw.url}/echo/", timeout=5).status_code == 200
    made = wait_for(lambda: list(tmp_path.glob("gateway-metrics-*")), 10, "the metrics folder")
    assert len(made) == 1
    gw.stop()
    assert keep.read_text() == "keep me"
    assert list(tmp_path.glob("gateway-metrics-*")) == []


@pytest.mark.parametrize("component", ["gateway", "echo"])
def test_a_master_that_cannot_bind_leaves_no_metrics_folder(
    log_dir: Path, consul: ConsulDouble, tmp_path: Path, component: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if component == "gateway":
            conf, env = "gateway/gunicorn.conf.py", gateway_env(port, consul.addr)
        else:
            conf, env = SERVICE_CONF, service_env("echo", port, consul.addr)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
        master = Process(f"unbindable-{component}-{port}", conf, env, port, log_dir)
        try:
            assert master.start().wait_exit(30) != 0  # gunicorn tries 5 times, a second apart
        finally:
            master.stop()
    assert "Connection in use" in master.log()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(autouse=True)
def _echo_keeps_serving(echo: Process) -> Iterator[None]:
    yield
    assert requests.get(f"{echo.url}/health", timeout=5).status_code == 200


# -- rate limits -----------------------------------------------------------------------------


def test_a_client_over_the_rate_gets_429_with_retry_after_and_others_are_not_affected(
    start_gateway: Callable[..., Process], echo: Process
) -> None:
    gw = routed(
        start_gateway,
        GATEWAY_RATE_LIMIT="2",
        GATEWAY_RATE_BURST="5",
        GATEWAY_TRUSTED_HOPS="1",
        WEB_CONCURRENCY="1",
    )
    # Behind one trusted hop, X-Forwarded-For names the client: two clients, two buckets.
    greedy = [
        requests.get(f"{gw.url}/echo/", headers={"X-Forwarded-For": "198.51.100.1"}, timeout=5)
        for _ in range(12)
    ]
    statuses = [r.status_code for r in greedy]
    assert 200 in statuses and 429 in statuses
    refused = next(r for r in greedy if r.status_code == 429)
    assert refused.json()["error"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 1
    polite = requests.get(f"{gw.url}/echo/", headers={"X-Forwarded-For": "198.51.100.2"}, timeout=5)
    assert polite.status_code == 200

    def counted() -> float | None:
        text = requests.get(f"{gw.admin_url}/_gateway/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith('gateway_limited_total{limit="rate",service="echo"}'):
                return float(line.rsplit(" ", 1)[1]) or None
        return None

    assert wait_for(counted, 10, "rate refusals in the metrics") >= 1


def test_a_service_over_its_in_flight_limit_gets_503_with_retry_after(
    start_gateway: Callable[..., Process], echo: Process
) -> None:
    gw = routed(start_gateway, GATEWAY_MAX_INFLIGHT="1", WEB_CONCURRENCY="1")
    with RawConnection(gw.port) as slow:
        # A body that has not all arrived holds its request in flight at the gateway.
        slow.send(b"POST /echo/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 2000000\r\n\r\nx")

        def refused() -> list[requests.Response] | None:
            r = requests.get(f"{gw.url}/echo/", timeout=5)
            return [r] if r.status_code == 503 else None

        (answer,) = wait_for(refused, 10, "a refusal while one request is in flight")
        assert answer.json()["error"] == "too_many_requests_in_flight"
        assert answer.headers["Retry-After"] == "1"
    ok = wait_for(lambda: requests.get(f"{gw.url}/echo/", timeout=5).ok, 10, "service again")
    assert ok


# -- finding 5: path and query injection in quote --------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["sku=../admin/faults", "sku=apple%3Fx%3D1", "sku=apple&qty=%C2%B2", "sku=%2e%2e&qty=1"],
)
def test_finding_5_quote_refuses_injected_skus_and_odd_digits(
    start_service: StartService, consul: ConsulDouble, gateway: Process, query: str
) -> None:
    if not passing_ids(consul.addr, "quote"):
        start_service("catalog")
        start_service("quote")
    wait_for(lambda: passing_ids(consul.addr, "quote"), 15, "a passing quote instance")
    fine = wait_for(
        lambda: requests.get(f"{gateway.url}/quote/quote?sku=apple&qty=2", timeout=5).ok,
        15,
        "a route to quote",
    )
    assert fine
    answer = requests.get(f"{gateway.url}/quote/quote?{query}", timeout=5)
    assert answer.status_code == 400
    assert answer.json()["status"] == 400
