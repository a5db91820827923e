"""Where the registry differs from Consul it refuses loudly (registry-only behaviour).

Consul ignores query parameters it does not know and serves endpoints the registry does not
(KV, sessions, Connect, ...). The registry answers them with an error that says what it does
not support, so a client never takes an unfiltered or empty answer for a real one. These tests
need the registry and are skipped against a real Consul; those about 405 and ``?stale`` with
``?consistent`` hold on both, and the README check needs no agent.
"""

from __future__ import annotations

import http.client
import re
from pathlib import Path
from urllib.parse import urlsplit

import consul
import pytest

from registry.endpoints import READ_PARAMS, ROUTES

from .conftest import ConsulTarget
from .helpers import Api

pytestmark = pytest.mark.contract


@pytest.fixture
def registry_only(consul_target: ConsulTarget) -> None:
    """Skip against a real Consul, which accepts what the registry refuses."""
    if not consul_target.is_double:
        pytest.skip("registry-only behaviour: Consul ignores or serves these")


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/v1/health/service/web", {"ns": "team-a"}, "namespaces"),
        ("/v1/catalog/services", {"partition": "eu"}, "partitions"),
        ("/v1/health/service/web", {"peer": "other"}, "peering"),
        ("/v1/health/service/web", {"cached": ""}, "caching"),
        ("/v1/catalog/service/web", {"merge-central-config": ""}, "config entries"),
        ("/v1/agent/members", {"wan": "1"}, "WAN"),
        ("/v1/agent/services", {"tag": "v1"}, "does not support"),
        ("/v1/health/service/web", {"bogus": "1"}, "does not support"),
    ],
)
def test_an_unsupported_query_parameter_is_a_400_naming_it(
    api: Api, registry_only: None, path: str, params: dict[str, str], says: str
) -> None:
    response = api.get(path, **params)
    assert response.status_code == 400
    [name] = params
    assert f'"{name}"' in response.text
    assert says in response.text


def test_the_default_namespace_and_partition_are_accepted(api: Api, registry_only: None) -> None:
    assert api.get("/v1/health/service/web", ns="default", partition="default").status_code == 200
    api.session.headers["X-Consul-Namespace"] = "team-a"
    try:
        assert api.get("/v1/health/service/web").status_code == 400
    finally:
        del api.session.headers["X-Consul-Namespace"]


def test_stale_and_consistent_together_are_refused_as_consul_does(api: Api) -> None:
    response = api.get("/v1/catalog/services", stale="", consistent="")
    assert response.status_code == 400
    assert response.text == "Cannot specify ?stale with ?consistent, conflicting semantics."


@pytest.mark.parametrize("path", ["/v1/kv/some-key", "/v1/session/list", "/v1/connect/intentions"])
def test_an_unserved_consul_endpoint_is_a_501_not_a_404(
    api: Api, registry_only: None, path: str
) -> None:
    response = api.get(path)
    assert response.status_code == 501
    assert "does not serve" in response.text


def test_clients_see_the_refusal_instead_of_an_empty_answer(
    client: consul.Consul, registry_only: None
) -> None:
    # py-consul reads a KV 404 as "no such key"; the 501 makes it raise instead.
    with pytest.raises(consul.ConsulException, match="501"):
        client.kv.get("some-key")


def test_a_served_path_with_another_method_is_a_405(api: Api) -> None:
    response = api.session.delete(f"{api.addr}/v1/agent/services", timeout=10)
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_a_malformed_path_escape_is_a_400(consul_target: ConsulTarget, registry_only: None) -> None:
    # http.client sends the path as written (requests would re-encode the stray "%").
    parts = urlsplit(consul_target.addr)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", "/v1/health/service/web%zz")
        response = connection.getresponse()
        assert response.status == 400
        assert b"escape" in response.read()
    finally:
        connection.close()


def test_the_readme_table_lists_every_endpoint_its_methods_and_parameters() -> None:
    # The README's "What it serves" table is the user's copy of registry/endpoints.py.
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### What it serves", 1)[1].split("\n- **Paths**", 1)[0]
    rows = re.findall(r"^\| `(/v1/[^`]*)` \| ([A-Z, ]+) \|(.*)\|$", section, re.MULTILINE)
    documented = {}
    for path, methods, cell in rows:
        params = set(re.findall(r"`([a-z-]+)`", cell))
        if "reads" in cell:
            params |= set(READ_PARAMS)
        documented[re.sub(r"<[^>]+>$", "", path)] = (tuple(methods.split(", ")), params)
    in_code = {r.pattern: (r.methods, set(r.params)) for r in ROUTES}
    assert documented == in_code
