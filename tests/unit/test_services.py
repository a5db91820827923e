"""The sample services through their app factories and Flask's test client (no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from discovery.errors import NoInstanceError
from services.catalog.app import create_app as create_catalog
from services.common.faults import Faults
from services.echo.app import create_app as create_echo
from services.quote.app import create_app as create_quote


class FakeCatalog:
    """Stands in for ServiceClient: answers like the catalog service, or raises."""

    def __init__(
        self, status: int = 200, body: dict[str, Any] | None = None, error: Exception | None = None
    ):
        self.status, self.body, self.error = status, body or {}, error
        self.calls: list[str] = []

    def get(self, service: str, path: str, **kwargs: Any) -> requests.Response:
        self.calls.append(f"{service}{path}")
        if self.error:
            raise self.error
        response = requests.Response()
        response.status_code = self.status
        response._content = json.dumps(self.body).encode()
        return response


@pytest.fixture
def catalog() -> FlaskClient:
    return create_catalog({"INSTANCE_ID": "catalog-test"}).test_client()


def test_every_response_names_its_instance(catalog: FlaskClient) -> None:
    response = catalog.get("/items/apple")
    assert response.headers["X-Instance-ID"] == "catalog-test"
    assert response.get_json()["instance"] == "catalog-test"
    assert response.get_json()["price_cents"] == 50


def test_unknown_product_and_unknown_path_are_json_404s(catalog: FlaskClient) -> None:
    assert catalog.get("/items/unicorn").get_json()["detail"] == "no product with sku 'unicorn'"
    response = catalog.get("/no/such/path")
    assert response.status_code == 404 and response.is_json


def test_wrong_method_is_a_json_405(catalog: FlaskClient) -> None:
    response = catalog.delete("/items/apple")
    assert response.status_code == 405 and response.get_json()["status"] == 405


def test_health_is_cheap_and_can_be_failed_on_purpose(catalog: FlaskClient) -> None:
    assert catalog.get("/health").get_json() == {"status": "ok"}
    assert catalog.put("/admin/faults", json={"fail_health": True}).status_code == 200
    assert catalog.get("/health").status_code == 503


def test_fault_knobs_reject_bad_values_and_change_nothing(catalog: FlaskClient) -> None:
    response = catalog.put("/admin/faults", json={"error_rate": 2, "latency_ms": 10})
    assert response.status_code == 400
    assert "error_rate" in response.get_json()["problems"][0]
    assert catalog.get("/admin/faults").get_json()["latency_ms"] == 0
    assert catalog.put("/admin/faults", data="not json").status_code == 400


def test_injected_errors_use_the_configured_status(catalog: FlaskClient) -> None:
    catalog.put("/admin/faults", json={"error_rate": 1.0, "error_status": 503})
    response = catalog.get("/items")
    assert response.status_code == 503
    assert response.headers["X-Instance-ID"] == "catalog-test"
    assert catalog.get("/health").status_code == 200  # health is never faulted by error_rate


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FAULT_ERROR_RATE": "1.5"}, "FAULT_ERROR_RATE"),
        ({"FAULT_LATENCY": "slow"}, "FAULT_LATENCY"),
        ({"FAULT_ERROR_STATUS": "404"}, "FAULT_ERROR_STATUS"),
    ],
)
def test_bad_fault_variables_are_named(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ValueError, match=variable):
        Faults.from_env(env)


def quote_app(fake: FakeCatalog) -> Flask:
    return create_quote({"INSTANCE_ID": "quote-test", "CATALOG_CLIENT": fake})


def test_quote_prices_through_the_catalog() -> None:
    fake = FakeCatalog(body={"sku": "milk", "price_cents": 129, "instance": "catalog-7"})
    body = quote_app(fake).test_client().get("/quote?sku=milk&qty=3").get_json()
    assert (body["total_cents"], body["catalog_instance"], body["instance"]) == (
        387,
        "catalog-7",
        "quote-test",
    )
    assert fake.calls == ["catalog/items/milk"]


@pytest.mark.parametrize(
    "query", ["", "?sku=milk&qty=0", "?sku=milk&qty=abc", "?sku=milk&qty=1001"]
)
def test_quote_rejects_bad_queries(query: str) -> None:
    response = quote_app(FakeCatalog()).test_client().get(f"/quote{query}")
    assert response.status_code == 400 and response.get_json()["detail"]


@pytest.mark.parametrize(
    ("fake", "status"),
    [
        (FakeCatalog(error=NoInstanceError("catalog")), 503),
        (FakeCatalog(error=requests.ConnectionError("refused")), 502),
        (FakeCatalog(status=500), 502),
        (FakeCatalog(status=404), 404),
    ],
)
def test_quote_maps_catalog_failures_to_clear_errors(fake: FakeCatalog, status: int) -> None:
    response = quote_app(fake).test_client().get("/quote?sku=milk")
    assert response.status_code == status and response.is_json


def test_echo_describes_method_path_query_and_body() -> None:
    client = create_echo({"INSTANCE_ID": "echo-test"}).test_client()
    body = client.post("/a/b?x=1", data=b"abc", headers={"X-Test": "1"}).get_json()
    assert (body["method"], body["path"], body["query"], body["body_bytes"]) == (
        "POST",
        "/a/b",
        "x=1",
        3,
    )
    assert body["headers"]["X-Test"] == "1"
