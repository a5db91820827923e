"""Which Consul agent the test suite uses: never the one a `make run` shell exports."""

from __future__ import annotations

from tests.conftest import external_addr


def test_consul_http_addr_alone_never_points_the_tests_at_an_agent() -> None:
    assert external_addr(None, {"CONSUL_HTTP_ADDR": "http://127.0.0.1:8500"}) is None


def test_only_the_option_or_the_test_variable_name_an_agent() -> None:
    assert external_addr("127.0.0.1:8500", {}) == "http://127.0.0.1:8500"
    assert (
        external_addr(None, {"CONSUL_TEST_ADDR": "http://10.0.0.5:8500/"}) == "http://10.0.0.5:8500"
    )
