"""What an operator sees, from real gunicorn processes: JSON logs, traces, spans, metrics.

One stack per module: catalog (two workers), quote, echo and a gateway, all with JSON logs,
access logs and OTLP export to a real receiver on loopback.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from registry.launcher import ConsulDouble, free_port
from tests.integration.conftest import StartService
from tests.integration.harness import GUNICORN, ROOT, Process, gateway_env, passing_ids, wait_for
from tests.integration.otlp_receiver import Receiver, run_receiver

pytestmark = pytest.mark.integration

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")
LINE_KEYS = {"time", "level", "component", "instance", "request_id", "trace_id", "message"}
ACCESS_KEYS = {"method", "path", "status", "upstream", "attempts", "bytes", "duration_ms"}
SERVER, CLIENT = 2, 3  # OTLP span kinds


class Stack(NamedTuple):
    gateway: Process
    catalog: Process
    quote: Process
    metrics_root: Path
    receiver: Receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with run_receiver() as found:
        yield found


@pytest.fixture(scope="module")
def stack(
    receiver: Receiver,
    start_service: StartService,
    start_gateway: Callable[..., Process],
    consul: ConsulDouble,
    tmp_path_factory: pytest.TempPathFactory,
) -> Stack:
    observed = {
        "LOG_FORMAT": "json",
        "ACCESS_LOG": "true",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    metrics_root = tmp_path_factory.mktemp("metrics")
    catalog = start_service(
        "catalog", WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_root), **observed
    )
    quote = start_service("quote", **observed)
    start_service("echo", **observed)
    for name in ("catalog", "quote", "echo"):
        wait_for(lambda n=name: passing_ids(consul.addr, n), 15, f"a passing {name}")
    gateway = start_gateway(**observed)
    for path in ("/echo/", "/catalog/items"):
        wait_for(lambda p=path: requests.get(gateway.url + p, timeout=2).ok, 10, f"route {path}")
    return Stack(gateway, catalog, quote, metrics_root, receiver)


def json_lines(proc: Process) -> list[dict[str, Any]]:
    """Every line the process wrote to stderr/stdout, each parsed as JSON (or the test fails)."""
    lines = proc.log_path.read_text().splitlines()
    assert lines, f"{proc.name} wrote nothing"
    return [json.loads(line) for line in lines]


def access_lines(proc: Process, request_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in json_lines(proc)
        if line["request_id"] == request_id and "status" in line and "method" in line
    ]


def test_every_log_line_is_json_with_component_instance_and_request_ids(stack: Stack) -> None:
    answer = requests.get(
        f"{stack.gateway.url}/catalog/items/apple", headers={"X-Request-ID": "log-1"}, timeout=5
    )
    assert answer.status_code == 200
    line = wait_for(lambda: access_lines(stack.gateway, "log-1"), 10, "the gateway's access line")[
        0
    ]
    assert line.keys() >= LINE_KEYS
    assert line.keys() >= ACCESS_KEYS
    assert line["component"] == "gateway"
    assert line["method"] == "GET"
    assert line["path"] == "/catalog/items/apple"
    assert line["status"] == 200
    assert line["upstream"] == answer.json()["instance"]
    assert line["attempts"] == 1
    assert line["bytes"] > len(answer.content)
    assert TRACEPARENT.fullmatch(f"00-{line['trace_id']}-{'1' * 16}-01")
    served = wait_for(lambda: access_lines(stack.catalog, "log-1"), 10, "catalog's access line")
    assert served[0]["component"] == "catalog"
    assert served[0]["instance"] == answer.json()["instance"]
    assert served[0]["trace_id"] == line["trace_id"]
    for proc in (stack.gateway, stack.catalog, stack.quote):
        for entry in json_lines(proc):
            assert entry.keys() >= LINE_KEYS, entry
            assert entry["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def echoed_trace(gateway: Process, **headers: str) -> dict[str, str]:
    answer = requests.get(f"{gateway.url}/echo/t", headers=headers, timeout=5)
    assert answer.status_code == 200
    return {k.lower(): v for k, v in answer.json()["headers"].items()}


def test_gateway_starts_a_trace_when_none_came(stack: Stack) -> None:
    seen = echoed_trace(stack.gateway)
    assert TRACEPARENT.fullmatch(seen["traceparent"])
    assert "tracestate" not in seen


def test_gateway_continues_a_valid_trace_with_its_own_span_and_passes_tracestate(
    stack: Stack,
) -> None:
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    seen = echoed_trace(stack.gateway, traceparent=incoming, tracestate="vendor=abc,other=1")
    match = TRACEPARENT.fullmatch(seen["traceparent"])
    assert match is not None
    assert match.group(1) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert match.group(2) != "00f067aa0ba902b7"  # the gateway's own span
    assert seen["tracestate"] == "vendor=abc,other=1"


@pytest.mark.parametrize(
    "invalid",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "not a traceparent",
    ],
)
def test_gateway_replaces_an_invalid_traceparent_and_drops_its_tracestate(
    stack: Stack, invalid: str
) -> None:
    seen = echoed_trace(stack.gateway, traceparent=invalid, tracestate="vendor=abc")
    match = TRACEPARENT.fullmatch(seen["traceparent"])
    assert match is not None
    assert match.group(1) not in invalid.lower()
    assert "tracestate" not in seen


def test_quote_passes_the_trace_and_request_id_to_catalog(stack: Stack) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    answer = requests.get(
        f"{stack.gateway.url}/quote/quote?sku=apple&qty=2",
        headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01", "X-Request-ID": "chain-1"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    for proc in (stack.gateway, stack.quote, stack.catalog):
        line = wait_for(lambda p=proc: access_lines(p, "chain-1"), 10, f"{proc.name}'s line")[0]
        assert line["trace_id"] == trace_id, proc.name


def test_spans_of_gateway_quote_and_catalog_share_one_trace(stack: Stack) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    answer = requests.get(
        f"{stack.gateway.url}/quote/quote?sku=bread&qty=1",
        headers={"traceparent": f"00-{trace_id}-eee19b7ec3c1b174-01"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    spans = wait_for(
        lambda: (found := stack.receiver.of_trace(trace_id)) and len(found) >= 4 and found,
        15,
        "four spans of the trace",
    )
    by = {(s.service, s.kind): s for s in spans}
    gateway, quote = by[("gateway", SERVER)], by[("quote", SERVER)]
    call, catalog = by[("quote", CLIENT)], by[("catalog", SERVER)]
    assert gateway.parent_id == "eee19b7ec3c1b174"
    assert quote.parent_id == gateway.span_id
    assert call.parent_id == quote.span_id
    assert catalog.parent_id == call.span_id
    assert catalog.name == "GET /items/<sku>"


def metric_value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(p in line for p in wanted.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_service_metrics_count_by_route_template_across_workers(stack: Stack) -> None:
    def scrape() -> str:
        return requests.get(f"{stack.catalog.url}/metrics", timeout=5).text

    before = metric_value(
        scrape(), "http_server_requests_total", route="/items/<sku>", method="GET", status="200"
    )
    for sku in ("apple", "bread", "apple", "bread"):
        assert requests.get(f"{stack.catalog.url}/items/{sku}", timeout=5).status_code == 200
    assert requests.get(f"{stack.catalog.url}/nowhere/at/all", timeout=5).status_code == 404
    text = scrape()
    labels = {"route": "/items/<sku>", "method": "GET", "status": "200"}
    assert metric_value(text, "http_server_requests_total", **labels) == before + 4
    assert metric_value(text, "http_server_requests_total", route="<unmatched>", status="404") >= 1
    assert "/items/apple" not in text and "/nowhere" not in text  # never a raw path
    assert "http_server_request_duration_seconds_bucket" in text
    assert "http_server_requests_in_flight" in text
    assert len(list(stack.metrics_root.iterdir())) == 1  # the master's own folder


def test_service_removes_its_metrics_folder_on_exit(
    start_service: StartService, tmp_path: Path
) -> None:
    proc = start_service("echo", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert requests.get(f"{proc.url}/metrics", timeout=5).ok
    (folder,) = tmp_path.iterdir()
    assert list(folder.glob("*.db"))
    proc.stop()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("conf", "variable", "value"),
    [
        ("gateway/gunicorn.conf.py", "LOG_FORMAT", "xml"),
        ("services/gunicorn.conf.py", "LOG_FORMAT", "xml"),
        ("services/gunicorn.conf.py", "LOG_LEVEL", "loud"),
        ("gateway/gunicorn.conf.py", "OTEL_TRACES_EXPORTER", "zipkin"),
        ("services/gunicorn.conf.py", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ],
)
def test_bad_logging_or_otel_setting_stops_startup_naming_it(
    conf: str, variable: str, value: str, consul: ConsulDouble
) -> None:
    env = {
        **gateway_env(free_port(), consul.addr),
        "SERVICE_NAME": "echo",
        "SERVICE_PORT": str(free_port()),
        "OTEL_TRACES_EXPORTER": "otlp",
        variable: value,
    }
    done = subprocess.run(
        [GUNICORN, "-c", conf],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert variable in done.stderr.decode()


def test_the_gateway_does_not_route_a_services_metrics(stack: Stack) -> None:
    answer = requests.get(f"{stack.gateway.url}/catalog/metrics", timeout=5)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_routed"
    assert requests.get(f"{stack.catalog.url}/metrics", timeout=5).status_code == 200
