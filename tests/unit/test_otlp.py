"""OTLP export: what its start-up log line may show of the endpoint."""

from __future__ import annotations

import logging

import pytest

from discovery import otlp, tracing
from discovery.tracing import ExportSettings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:secret@jaeger:4318/v1/traces?token=t", "http://jaeger:4318"),
        ("https://collector.example/v1/traces", "https://collector.example:443"),
        ("http://[::1]:4318/v1/traces", "http://[::1]:4318"),
        ("http://collector:99999/v1/traces", "http://collector"),  # a bad port is not shown
    ],
)
def test_origin_keeps_scheme_host_and_port_only(url: str, shown: str) -> None:
    assert otlp.origin(url) == shown


def test_the_start_up_line_never_shows_credentials(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = "http://alice:hunter2@127.0.0.1:4318/v1/traces"
    settings = ExportSettings(True, endpoint, "quote")
    with caplog.at_level(logging.INFO, logger="discovery.otlp"):
        sink = otlp.install(settings, "quote-test")
    try:
        assert "exporting spans over OTLP/HTTP to http://127.0.0.1:4318" in caplog.text
        assert "hunter2" not in caplog.text and "alice" not in caplog.text
    finally:
        sink.shutdown()
        tracing.SINK.clear()
