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
    claims={"shop": frozenset({"/api/shop"})},
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
        (("gateway.prefix=/x\n",), "/orders", "random"),
    ],
)
def test_invalid_options_fall_back_to_defaults(
    tags: tuple[str, ...], prefix: str, balancer: str
) -> None:
    route = route_for(service("orders", tags=tags), "random")
    assert route is not None
    assert (route.prefix, route.balancer) == (prefix, balancer)


def test_a_claim_outside_the_allowlist_keeps_the_services_own_prefix() -> None:
    table = RouteTable.build({"aaa": service("aaa", meta={"gateway-prefix": "/x"})}, "random")
    assert table.match("/x/1") is None
    matched = table.match("/aaa/1")
    assert matched is not None and matched[0].service == "aaa"


def test_no_name_can_take_another_services_own_prefix() -> None:
    # The attack of the security review: "aaa" sorts before "catalog" and claims /catalog.
    services = {
        "aaa": service("aaa", meta={"gateway-prefix": "/catalog"}),
        "catalog": service("catalog"),
    }
    for claims in ({}, {"aaa": frozenset({"/catalog"})}):
        matched = RouteTable.build(services, "random", claims).match("/catalog/items")
        assert matched is not None and matched[0].service == "catalog"


def test_between_two_allowed_claimants_the_incumbent_keeps_the_prefix() -> None:
    claims = {"a": frozenset({"/x"}), "b": frozenset({"/x"})}
    only_b = RouteTable.build({"b": service("b", meta={"gateway-prefix": "/x"})}, "r", claims)
    both = {
        "a": service("a", meta={"gateway-prefix": "/x"}),
        "b": service("b", meta={"gateway-prefix": "/x"}),
    }
    matched = RouteTable.build(both, "random", claims, previous=only_b).match("/x/1")
    assert matched is not None and matched[0].service == "b"
    fresh = RouteTable.build(both, "random", claims).match("/x/1")
    assert fresh is not None and fresh[0].service == "a"


@pytest.mark.parametrize("name", ["a/b", "_gateway", "x y", "#", "echo\n", "echo\r\n"])
def test_a_service_whose_name_is_no_path_segment_is_not_routed(name: str) -> None:
    table = RouteTable.build({name: service(name)}, "random")
    assert table.routes == []
