"""The catalog's products. Fixed data, so every replica gives the same answer."""

from __future__ import annotations

from typing import TypedDict


class Product(TypedDict):
    """One product with its unit price in cents."""

    sku: str
    name: str
    price_cents: int


PRODUCTS: dict[str, Product] = {
    p["sku"]: p
    for p in (
        Product(sku="apple", name="Apple", price_cents=50),
        Product(sku="bread", name="Sourdough bread", price_cents=450),
        Product(sku="cheese", name="Comté, 200 g", price_cents=799),
        Product(sku="coffee", name="Coffee beans, 1 kg", price_cents=2450),
        Product(sku="milk", name="Whole milk, 1 l", price_cents=129),
    )
}
