"""The quote service: prices a basket by asking the catalog service, found through Consul.

``GET /quote?sku=apple&qty=3`` calls ``catalog`` through :class:`discovery.ServiceClient`,
which balances across the catalog's passing instances, so the answer names both the quote
instance and the catalog instance that served it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from flask import Blueprint, Flask, abort, current_app, request
from flask.typing import ResponseReturnValue

from discovery import ConsulSettings, NoInstanceError, ServiceClient
from services.common.web import create_base_app, reply

bp = Blueprint("quote", __name__)
MAX_QTY = 1000


@bp.get("/quote")
def quote() -> ResponseReturnValue:
    """Price ``qty`` units of ``sku``."""
    sku = request.args.get("sku", "")
    qty_raw = request.args.get("qty", "1")
    if not sku:
        abort(400, description="query parameter 'sku' is required")
    if not qty_raw.isdigit() or not 1 <= int(qty_raw) <= MAX_QTY:
        abort(400, description=f"query parameter 'qty' must be an integer from 1 to {MAX_QTY}")
    client: ServiceClient = current_app.extensions["catalog_client"]
    try:
        answer = client.get("catalog", f"/items/{sku}")
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
        ConsulSettings.from_env(), services=["catalog"]
    )
    app.extensions["catalog_client"] = client
    app.register_blueprint(bp)
    return app
