"""Services and instances that leave Consul leave nothing behind in a gateway worker."""

from __future__ import annotations

from tests.unit.inmemory import Upstreams, answer, build, exchange, run, service

GET = b"GET /svc/items HTTP/1.1\r\nHost: gw\r\n\r\n"


def test_a_service_that_left_and_came_back_starts_with_a_fresh_balancer() -> None:
    ups = Upstreams({1: lambda req: answer(), 2: lambda req: answer()})
    proxy, _ = build(ups, [service("svc", 1, 2)], balancer="round_robin")
    before = proxy.picker("svc", "round_robin")
    assert proxy.picker("svc", "round_robin") is before  # kept while the service is listed
    proxy.on_services({})
    proxy.sweep()
    proxy.on_services({"svc": service("svc", 1, 2)})
    proxy.sweep()
    assert proxy.picker("svc", "round_robin") is not before


def test_only_the_balancers_of_listed_services_are_kept() -> None:
    ups = Upstreams({n: lambda req: answer() for n in range(1, 101)})
    proxy, _ = build(ups, [service(f"svc{n}", n) for n in range(1, 101)])
    kept = {n: proxy.picker(f"svc{n}", "least_outstanding") for n in range(1, 101)}
    proxy.on_services({"svc7": service("svc7", 7)})
    proxy.sweep()
    proxy.on_services({f"svc{n}": service(f"svc{n}", n) for n in range(1, 101)})
    proxy.sweep()
    fresh = sum(proxy.picker(f"svc{n}", "least_outstanding") is not kept[n] for n in kept)
    assert fresh == 99  # all but svc7's, which never left


def test_idle_connections_to_an_instance_that_left_are_closed() -> None:
    ups = Upstreams({1: lambda req: answer(b"hi")})
    proxy, front = build(ups, [service("svc", 1)])

    async def scenario() -> int:
        await exchange(front, GET)  # leaves its kept-alive connection idle in the pool
        await exchange(front, GET)  # ...which this one reuses
        assert ups.connections == 1
        proxy.on_services({})
        proxy.sweep()
        proxy.on_services({"svc": service("svc", 1)})  # the same address, registered again
        proxy.sweep()
        await exchange(front, GET)
        return ups.connections

    assert run(scenario()) == 2  # the idle connection went with the instance
