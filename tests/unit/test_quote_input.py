"""Quote's inputs as an attacker sends them: no query parameter can choose what catalog is asked.

Finding 5 of the security review: ``sku=../admin/faults`` made quote fetch catalog's
``/admin/faults``, ``sku=apple%3Fx%3D1`` added a query string to catalog's URL, and ``qty=%C2%B2``
(a superscript two, which ``str.isdigit`` accepts and ``int`` refuses) was a 500. Each test
sends the raw query string the way a client would and records the exact path quote asked for.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote as percent_encode

import pytest
import requests
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from services.quote.app import create_app

SKU = re.compile(r"[a-z0-9-]{1,64}")


class RecordingCatalog:
    """Stands in for ServiceClient: prices every sku at 50 cents and records every path asked."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def get(self, service: str, path: str, **kwargs: Any) -> requests.Response:
        self.paths.append(f"{service}:{path}")
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps({"price_cents": 50, "instance": "catalog-1"}).encode()
        return response


def quote_client() -> tuple[FlaskClient, RecordingCatalog]:
    catalog = RecordingCatalog()
    app = create_app({"INSTANCE_ID": "quote-test", "CATALOG_CLIENT": catalog})
    return app.test_client(), catalog


def assert_refused(response: Any, parameter: str) -> None:
    """A 400 in the project's JSON error shape whose detail names *parameter*."""
    body = response.get_json()
    assert response.status_code == 400, response.data
    assert body["status"] == 400 and body["error"] == "bad_request"
    assert f"'{parameter}'" in body["detail"]


@pytest.mark.parametrize(
    "raw_sku",
    [
        "../admin/faults",
        "..%2Fadmin%2Ffaults",
        "apple%3Fx%3D1",  # Flask decodes it to apple?x=1
        "apple%23frag",
        "apple/../../x",
        "%2e%2e",
        "..",
        "apple%2F",
        "apple%25",
        "APPLE",
        "apple%0A",
        "apple%00",
        "%C3%A4pfel",
        "a" * 65,
    ],
)
def test_a_sku_that_is_not_a_plain_name_is_refused_before_catalog_is_asked(raw_sku: str) -> None:
    client, catalog = quote_client()
    response = client.get(f"/quote?sku={raw_sku}&qty=1")
    assert_refused(response, "sku")
    assert catalog.paths == []


def test_a_missing_sku_is_refused() -> None:
    client, catalog = quote_client()
    assert_refused(client.get("/quote?qty=1"), "sku")
    assert_refused(client.get("/quote?sku=&qty=1"), "sku")
    assert catalog.paths == []


@pytest.mark.parametrize(
    "raw_qty",
    [
        "%C2%B2",  # superscript two: isdigit() is True, int() raises
        "%D9%A3",  # Arabic-Indic three: int() gives 3, but it is not an ASCII number
        "%EF%BC%95",  # fullwidth five
        "0",
        "1001",
        "",
        "+1",
        "%2B1",
        "%201",
        "1%20",
        "-1",
        "1.0",
        "1e3",
        "0x10",
        "1_0",
        "99999999999999999999",
    ],
)
def test_a_qty_that_is_not_an_ascii_number_from_1_to_1000_is_refused(raw_qty: str) -> None:
    client, catalog = quote_client()
    response = client.get(f"/quote?sku=apple&qty={raw_qty}")
    assert_refused(response, "qty")
    assert catalog.paths == []


@pytest.mark.parametrize(("sku", "qty"), [("apple", "1"), ("coffee", "1000"), ("milk", "007")])
def test_a_plain_sku_asks_catalog_for_exactly_its_item(sku: str, qty: str) -> None:
    client, catalog = quote_client()
    response = client.get(f"/quote?sku={sku}&qty={qty}")
    assert response.status_code == 200
    assert response.get_json()["total_cents"] == 50 * int(qty)
    assert catalog.paths == [f"catalog:/items/{sku}"]


@settings(max_examples=200, deadline=None, database=None)
@given(sku=st.text(max_size=70), qty=st.text(max_size=6))
def test_no_sku_or_qty_makes_quote_ask_for_anything_but_one_item(sku: str, qty: str) -> None:
    client, catalog = quote_client()
    query = f"sku={percent_encode(sku, safe='')}&qty={percent_encode(qty, safe='')}"
    response = client.get(f"/quote?{query}")
    assert response.is_json and response.status_code in (200, 400)
    if response.status_code == 400:
        assert catalog.paths == []
        return
    assert SKU.fullmatch(sku) and re.fullmatch(r"[0-9]{1,4}", qty) and 1 <= int(qty) <= 1000
    assert catalog.paths == [f"catalog:/items/{sku}"]
