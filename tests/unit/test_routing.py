"""Route matching and the per-service tag and meta options."""

from __future__ import annotations

import pytest

from discovery.model import Instance, Service
from gateway.routing import RouteTable, route_for


def service(name: str, tags: tuple[str, ...] = (), meta: dict[str, str] | None = None) -> Service:
    inst = Instance(f"{name}-1", name, "127.0.0.1", 9000, "passing", tags=tags, meta=meta or {})
    return Service.of(name, [inst])


TABLE = RouteTable.build(
    {
        "catalog": service("catalog"),
        "quote": service("quote"),
        "shop": service("shop", meta={"gateway-prefix": "/api/shop"}),
        "internal": service("internal", tags=("gateway.expose=false",)),
    },
    "least_outstanding",
)


@pytest.mark.parametrize(
    ("path", "service", "upstream"),
    [
        ("/catalog/items", "catalog", "/items"),
        ("/catalog/items/apple", "catalog", "/items/apple"),
        ("/catalog", "catalog", "/"),
        ("/catalog/", "catalog", "/"),
        ("/quote/quote", "quote", "/quote"),
        ("/api/shop/cart", "shop", "/cart"),
        ("/api/shop", "shop", "/"),
    ],
)
def test_paths_route_to_their_service(path: str, service: str, upstream: str) -> None:
    matched = TABLE.match(path)
    assert matched is not None
    route, rest = matched
    assert (route.service, rest) == (service, upstream)


@pytest.mark.parametrize(
    "path", ["/", "/catalogue/items", "/internal/x", "/shop/cart", "/api", "/api/shopping"]
)
def test_unrouted_paths_do_not_match(path: str) -> None:
    assert TABLE.match(path) is None


def test_tags_set_prefix_and_balancer() -> None:
    route = route_for(
        service("orders", tags=("gateway.prefix=/o", "gateway.lb=peak_ewma")), "random"
    )
    assert route is not None
    assert (route.prefix, route.balancer) == ("/o", "peak_ewma")


def test_meta_wins_over_tags() -> None:
    svc = service("orders", tags=("gateway.prefix=/t",), meta={"gateway-prefix": "/m"})
    route = route_for(svc, "random")
    assert route is not None and route.prefix == "/m"


@pytest.mark.parametrize(
    ("tags", "prefix", "balancer"),
    [
        (("gateway.prefix=no spaces",), "/orders", "random"),
        (("gateway.lb=fastest",), "/orders", "random"),
        (("gateway.prefix=/",), "/orders", "random"),
    ],
)
def test_invalid_options_fall_back_to_defaults(
    tags: tuple[str, ...], prefix: str, balancer: str
) -> None:
    route = route_for(service("orders", tags=tags), "random")
    assert route is not None
    assert (route.prefix, route.balancer) == (prefix, balancer)


def test_prefix_clash_keeps_the_first_service_by_name() -> None:
    table = RouteTable.build(
        {
            "a": service("a", meta={"gateway-prefix": "/x"}),
            "b": service("b", meta={"gateway-prefix": "/x"}),
        },
        "random",
    )
    matched = table.match("/x/1")
    assert matched is not None and matched[0].service == "a"
