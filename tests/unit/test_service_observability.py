"""What a service does with trace context and metrics: pure Flask, no sockets, no gunicorn."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask

from discovery import metrics_dir, tracing
from services.common.settings import ServiceSettings
from services.echo.app import create_app as create_echo

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def echo(**env: str) -> Flask:
    settings = ServiceSettings.from_env({"SERVICE_ADDRESS": "10.0.0.5", **env}, "echo")
    app = create_echo({"INSTANCE_ID": "echo-test", "SETTINGS": settings})

    @app.get("/trace")
    def trace() -> dict[str, str]:
        current = tracing.CURRENT.get()
        assert current is not None
        return {"traceparent": current.parent.header(), "tracestate": current.tracestate}

    return app


def test_a_service_passes_on_only_the_sampled_flag_and_a_bounded_tracestate() -> None:
    state = ",".join(f"k{i}=v" for i in range(40))
    headers = {"traceparent": f"00-{TRACE}-{SPAN}-09", "tracestate": state}
    seen = echo().test_client().get("/trace", headers=headers).get_json()
    assert seen["traceparent"].endswith("-01")
    assert seen["tracestate"] == ",".join(f"k{i}=v" for i in range(32))


class Recorded:
    def __init__(self) -> None:
        self.spans: list[tracing.SpanRecord] = []

    def record(self, span: tracing.SpanRecord) -> None:
        self.spans.append(span)


def test_a_service_starts_traces_as_its_sampler_says() -> None:
    sink = Recorded()
    tracing.SINK[:] = [sink]  # install() leaves a sink in place alone: no SDK is started
    try:
        app = echo(OTEL_TRACES_EXPORTER="otlp", OTEL_TRACES_SAMPLER="always_off")
        seen = app.test_client().get("/trace").get_json()
        continued = f"00-{TRACE}-{SPAN}-01"  # always_off overrides even a sampled caller
        again = app.test_client().get("/trace", headers={"traceparent": continued}).get_json()
    finally:
        tracing.SINK.clear()
    assert seen["traceparent"].endswith("-00") and again["traceparent"].endswith("-00")
    assert sink.spans == []


def test_metrics_mode_is_decided_once_when_the_app_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    client = echo().test_client()
    # A variable that appears later (here: naming no folder) changes nothing per request.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "absent"))
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert b"http_server_requests_total" in scrape.data


def test_the_metrics_folder_is_made_inside_the_given_one_and_exported_to_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    made = metrics_dir.create("echo-metrics-")
    try:
        assert Path(made.path).parent == tmp_path and Path(made.path).is_dir()
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == made.path
        assert metrics_dir.multiprocess_dir() == made.path
    finally:
        made.remove()
    assert not Path(made.path).exists()
    assert metrics_dir.multiprocess_dir({}) is None
