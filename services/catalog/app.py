"""The catalog service: products and their prices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, abort
from flask.typing import ResponseReturnValue

from services.catalog.data import PRODUCTS
from services.common.web import create_base_app, reply

bp = Blueprint("catalog", __name__)


@bp.get("/items")
def list_items() -> ResponseReturnValue:
    """Every product."""
    return reply({"items": list(PRODUCTS.values())})


@bp.get("/items/<sku>")
def get_item(sku: str) -> ResponseReturnValue:
    """One product, or 404."""
    product = PRODUCTS.get(sku)
    if product is None:
        abort(404, description=f"no product with sku {sku!r}")
    return reply(dict(product))


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the catalog app; gunicorn serves ``services.catalog.app:create_app()``."""
    app = create_base_app("catalog", config)
    app.register_blueprint(bp)
    return app
