"""The quote service: prices a basket by asking the catalog service, found through Consul.

``GET /quote?sku=apple&qty=3`` calls ``catalog`` through :class:`discovery.ServiceClient`,
which balances across the catalog's passing instances, so the answer names both the quote
instance and the catalog instance that served it.

Query parameters are untrusted: ``sku`` becomes a path segment of a request to another
service, so it must be a plain name (no ``/``, ``?``, ``#``, ``%`` or dot segment can reach
catalog's URL), and ``qty`` must be ASCII digits (``str.isdigit`` also accepts ``²``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote as percent_encode

import requests
from flask import Blueprint, Flask, abort, current_app, request
from flask.typing import ResponseReturnValue

from discovery import NoInstanceError, ServiceClient
from services.common.web import create_base_app, reply

bp = Blueprint("quote", __name__)
MAX_QTY = 1000
# Catalog's SKUs (services/catalog/data.py) are lowercase words joined by hyphens.
SKU = re.compile(r"[a-z0-9-]{1,64}")
QTY = re.compile(r"[0-9]{1,4}")  # explicit ASCII: \d and isdigit() accept other digits


@bp.get("/quote")
def quote() -> ResponseReturnValue:
    """Price ``qty`` units of ``sku``."""
    sku = request.args.get("sku", "")
    qty_raw = request.args.get("qty", "1")
    if not SKU.fullmatch(sku):
        abort(400, description="query parameter 'sku' must be 1 to 64 of a-z, 0-9 and '-'")
    if not QTY.fullmatch(qty_raw) or not 1 <= int(qty_raw) <= MAX_QTY:
        abort(400, description=f"query parameter 'qty' must be an integer from 1 to {MAX_QTY}")
    client: ServiceClient = current_app.extensions["catalog_client"]
    try:
        # Encoded as one segment as well, so a looser SKU pattern can never reach another path.
        answer = client.get("catalog", f"/items/{percent_encode(sku, safe='')}")
    except NoInstanceError:
        abort(503, description="no passing instance of the catalog service")
    except requests.RequestException as exc:
        abort(502, description=f"the catalog service failed: {type(exc).__name__}")
    if answer.status_code == 404:
        abort(404, description=f"no product with sku {sku!r}")
    if answer.status_code != 200:
        abort(502, description=f"the catalog service answered {answer.status_code}")
    product = answer.json()
    qty = int(qty_raw)
    return reply(
        {
            "sku": sku,
            "qty": qty,
            "unit_price_cents": product["price_cents"],
            "total_cents": product["price_cents"] * qty,
            "catalog_instance": product["instance"],
        }
    )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the quote app; gunicorn serves ``services.quote.app:create_app()``."""
    app = create_base_app("quote", config)
    client = app.config.get("CATALOG_CLIENT") or ServiceClient(
        app.extensions["settings"].registration.consul, services=["catalog"]
    )
    app.extensions["catalog_client"] = client
    app.register_blueprint(bp)
    return app
