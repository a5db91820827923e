"""What every service gets from create_base_app: the JSON error shape and forwarded headers."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from services.catalog.app import create_app as create_catalog
from services.common.settings import ServiceSettings
from services.echo.app import create_app as create_echo

SHAPE = {"error", "detail", "status", "request_id"}


def echo(**env: str) -> Flask:
    settings = ServiceSettings.from_env({"SERVICE_ADDRESS": "10.0.0.5", **env}, "echo")
    app = create_echo({"INSTANCE_ID": "echo-test", "SETTINGS": settings})

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("a bug")

    return app


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = response.get_json()
    assert response.status_code == status, response.data
    assert set(body) >= SHAPE and (body["error"], body["status"]) == (code, status)
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def test_a_views_404_and_the_routers_404_share_the_shape() -> None:
    catalog = create_catalog({"INSTANCE_ID": "catalog-test"}).test_client()
    body = assert_error(catalog.get("/items/unicorn"), 404, "not_found")
    assert body["detail"] == "no product with sku 'unicorn'"
    assert_error(catalog.get("/no/such/path"), 404, "not_found")


def test_a_wrong_method_is_a_405_that_keeps_its_allow_header() -> None:
    response = create_catalog({"INSTANCE_ID": "c"}).test_client().delete("/items/apple")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_an_unexpected_exception_is_a_500_without_a_traceback() -> None:
    response = echo().test_client().get("/boom")
    body = assert_error(response, 500, "internal_error")
    assert "Traceback" not in response.get_data(as_text=True) and "a bug" not in body["detail"]


def test_an_injected_fault_uses_the_shape_and_the_gateways_request_id() -> None:
    client = echo(FAULT_ERROR_RATE="1", FAULT_ERROR_STATUS="503").test_client()
    body = assert_error(client.get("/x", headers={"X-Request-ID": "rid-7"}), 503, "injected_fault")
    assert body["request_id"] == "rid-7"


def test_a_request_without_an_id_says_so_with_null() -> None:
    client = echo(FAULT_ERROR_RATE="1").test_client()
    assert assert_error(client.get("/x"), 500, "injected_fault")["request_id"] is None


def test_bad_fault_settings_are_a_400_listing_the_problems() -> None:
    response = echo().test_client().put("/admin/faults", json={"error_rate": 2})
    body = assert_error(response, 400, "invalid_fault_settings")
    assert "error_rate" in body["problems"][0]


FORWARDED = {
    "X-Forwarded-For": "198.51.100.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "shop.example",
    "X-Forwarded-Prefix": "/echo",
}


@pytest.mark.parametrize(
    ("hops", "client"),
    [
        ("1", {"address": "198.51.100.7", "scheme": "https", "host": "shop.example"}),
        ("0", {"address": "10.1.1.1", "scheme": "http", "host": "localhost"}),
    ],
)
def test_the_client_is_read_from_the_gateways_headers_only_when_trusted(
    hops: str, client: dict[str, str]
) -> None:
    app = echo(SERVICE_TRUSTED_HOPS=hops)
    response = app.test_client().get(
        "/a", headers=FORWARDED, environ_base={"REMOTE_ADDR": "10.1.1.1"}
    )
    assert response.get_json()["client"] == client


def test_one_trusted_hop_believes_only_the_last_forwarded_address() -> None:
    headers = {**FORWARDED, "X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
    response = echo().test_client().get("/a", headers=headers)
    assert response.get_json()["client"]["address"] == "198.51.100.7"


def test_fault_injection_spares_prometheus_scrapes() -> None:
    client = echo(FAULT_ERROR_RATE="1", FAULT_ERROR_STATUS="503").test_client()
    assert_error(client.get("/x"), 503, "injected_fault")  # the fault is on
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert b"http_server_requests_total" in scrape.data
