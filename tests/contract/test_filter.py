"""``?filter=``: Consul's filter language on every list endpoint (api-docs/features/filtering and
each endpoint's "Filtering" table).

Three instances with different tags, meta, ports, tagged addresses and check states are
filtered by a table of expressions with the instances each must keep; the same instances back
a property test that ``and``, ``or`` and ``not`` compose like set operations. A filter that does
not parse or names an unknown field is refused: real Consul answers 500, the registry 400
(the client is at fault), both with "Failed to create boolean expression evaluator".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ConsulTarget
from .helpers import Api

pytestmark = pytest.mark.contract


@dataclass(frozen=True)
class Fleet:
    """The service name and its three instances' IDs, keyed "a", "b", "c"."""

    name: str
    ids: dict[str, str]

    def keys(self, ids: list[str]) -> set[str]:
        """Turn instance IDs back into "a", "b", "c"."""
        back = {v: k for k, v in self.ids.items()}
        return {back[i] for i in ids if i in back}


@pytest.fixture(scope="module")
def fleet(consul_target: ConsulTarget) -> Iterator[Fleet]:
    """Three instances of one service, registered once for the module."""
    name = f"contract-filter-{uuid.uuid4().hex[:8]}"
    ids = {key: f"{name}-{key}" for key in "abc"}
    bodies = {
        "a": {"Tags": ["v1", "blue"], "Meta": {"env": "qa", "team": "x"}, "Port": 8080},
        "b": {"Tags": ["v2"], "Meta": {"env": "prod"}, "Port": 9090},
        "c": {
            "Port": 8080,
            "TaggedAddresses": {"lan": {"Address": "10.1.0.3", "Port": 80}},
        },
    }
    status = {"a": "passing", "b": "critical", "c": "warning"}
    with Api(consul_target.addr) as api:
        for key, extra in bodies.items():
            body = {"Name": name, "ID": ids[key], "Address": f"10.0.0.{ord(key) - 96}", **extra}
            body["Check"] = {"TTL": "10m", "Status": status[key]}
            assert api.put("/v1/agent/service/register", json=body).status_code == 200
        yield Fleet(name, ids)
        for service_id in ids.values():
            api.put(f"/v1/agent/service/deregister/{service_id}")


HEALTH_SERVICE_TABLE = [
    ('Service.Tags contains "v1"', "a"),
    ('"v2" in Service.Tags', "b"),
    ('"v2" not in Service.Tags', "ac"),
    ("Service.Tags is empty", "c"),
    ("Service.Tags is not empty", "ab"),
    ('Service.Meta.env == "qa"', "a"),
    ('Service.Meta.env != "qa"', "bc"),
    ('Service.Meta["team"] == x', "a"),
    ('"env" in Service.Meta', "ab"),
    ("Service.Meta is empty", "c"),
    (r'Service.Meta.env == "\x71a"', "a"),  # Go escapes in double quotes
    # bexpr 0.1.2 takes a missing map key as matching every operator but ==, in, is not empty.
    ('Service.Meta.env matches "^q"', "ac"),
    ("Service.Port == 8080", "ac"),
    ('Service.Port == "0x1f90"', "ac"),
    (r'Service.Port != 8080 and Service.Address matches "^10\\.0\\.0\\.[0-9]$"', "b"),
    ('Service.Address not matches "2$"', "ac"),
    ("Checks.Status == critical", "b"),
    ("Checks.Status == passing", "abc"),
    ("not (Checks.Status == critical or Checks.Status == warning)", "a"),
    ("Checks.ServiceTags contains v1", "a"),
    ('Service.ID matches "-(a|b)$"', "ab"),
    ("Service.TaggedAddresses.lan.Port == 80", "c"),
    ('"lan" in Service.TaggedAddresses', "c"),
    ("Service.Weights.Passing == 1 and Service.EnableTagOverride == false", "abc"),
    ("(Service.Port == 9090 or Service.Port == 8080) and not Service.Tags is empty", "ab"),
    ("Service.Service == `{name}`", "abc"),
    ('Node.Datacenter == "dc1"', "abc"),
]


@pytest.mark.parametrize(("expression", "kept"), HEALTH_SERVICE_TABLE)
def test_health_service_filter_keeps_the_matching_instances(
    api: Api, fleet: Fleet, expression: str, kept: str
) -> None:
    entries = _get(api, f"/v1/health/service/{fleet.name}", expression.format(name=fleet.name))
    assert fleet.keys([e["Service"]["ID"] for e in entries]) == set(kept)


CATALOG_SERVICE_TABLE = [
    ('ServiceTags contains "v1"', "a"),
    ("ServiceMeta.env == prod", "b"),
    ("ServicePort == 8080", "ac"),
    ('ServiceTaggedAddresses.lan.Address == "10.1.0.3"', "c"),
    ('ServiceAddress contains ".0.2"', "b"),
    ("NodeMeta is not empty and ServiceWeights.Warning == 1", "abc"),
]


@pytest.mark.parametrize(("expression", "kept"), CATALOG_SERVICE_TABLE)
def test_catalog_service_filter_keeps_the_matching_instances(
    api: Api, fleet: Fleet, expression: str, kept: str
) -> None:
    entries = _get(api, f"/v1/catalog/service/{fleet.name}", expression)
    assert fleet.keys([e["ServiceID"] for e in entries]) == set(kept)


def test_agent_services_and_checks_filter(api: Api, fleet: Fleet) -> None:
    services = _get(api, "/v1/agent/services", f'Service == "{fleet.name}" and Port == 9090')
    assert fleet.keys(list(services)) == {"b"}
    expression = f'ServiceName == "{fleet.name}" and Status != passing'
    checks = _get(api, "/v1/agent/checks", expression)
    assert fleet.keys([c["ServiceID"] for c in checks.values()]) == {"b", "c"}


def test_health_checks_and_state_filter(api: Api, fleet: Fleet) -> None:
    checks = _get(api, f"/v1/health/checks/{fleet.name}", "Status == warning")
    assert fleet.keys([c["ServiceID"] for c in checks]) == {"c"}
    expression = f'ServiceName == "{fleet.name}" and (Status == passing or Status == critical)'
    state = _get(api, "/v1/health/state/any", expression)
    assert fleet.keys([c["ServiceID"] for c in state]) == {"a", "b"}


def test_node_endpoints_filter(api: Api, fleet: Fleet) -> None:
    node = api.get("/v1/agent/self").json()["Config"]["NodeName"]
    assert [n["Node"] for n in _get(api, "/v1/catalog/nodes", f'Node == "{node}"')] == [node]
    assert _get(api, "/v1/catalog/nodes", 'Node == "no-such-node"') == []
    checks = _get(api, f"/v1/health/node/{node}", f'ServiceName == "{fleet.name}"')
    assert fleet.keys([c["ServiceID"] for c in checks]) == {"a", "b", "c"}
    services = _get(api, f"/v1/catalog/node/{node}", "Meta.env == qa")["Services"]
    assert fleet.keys(list(services)) == {"a"}


def test_catalog_services_filter_runs_on_each_instance(api: Api, fleet: Fleet) -> None:
    listing = _get(
        api, "/v1/catalog/services", f'ServiceName == "{fleet.name}" and ServicePort == 9'
    )
    assert fleet.name not in listing
    listing = _get(api, "/v1/catalog/services", "ServiceMeta.env == prod")
    assert listing[fleet.name] == ["v2"]


@pytest.mark.parametrize(
    "expression",
    [
        "Service.Nope == 1",  # unknown field
        'Service.Tags == "v1"',  # operator the field does not support
        "Service.Port == abc",  # value of the wrong type
        "Service.ID",  # no operator
        '(Service.ID == "a"',  # unbalanced parenthesis
        'Service.ID == "a" and',  # dangling and
        'Service.ID matches "("',  # bad regular expression
        'Service.ID matches "a{4294967296}"',  # repeat count too large (Go's regexp refuses)
        'Service.ID matches "(?=a)"',  # lookahead: RE2 has none
        r'Service.ID matches "(a)\\1"',  # backreference: RE2 has none
    ],
)
def test_a_bad_filter_is_refused_naming_the_problem(
    api: Api, fleet: Fleet, consul_target: ConsulTarget, expression: str
) -> None:
    response = api.get(f"/v1/health/service/{fleet.name}", filter=expression)
    assert "Failed to create boolean expression evaluator" in response.text
    if consul_target.is_double:
        # Registry-only: Consul answers 500 for the client's mistake; the registry 400, naming
        # the parameter.
        assert response.status_code == 400
        assert "filter" in response.text.split(":")[0]
    else:
        assert response.status_code == 500


ATOMS = [
    'Service.Tags contains "v1"',
    "Service.Port == 8080",
    'Service.Meta.env == "prod"',
    "Checks.Status == warning",
    "Service.Tags is empty",
]
Tree = str | tuple[str, ...]
_trees: st.SearchStrategy[Tree] = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(st.just("not"), inner),
        st.tuples(st.sampled_from(["and", "or"]), inner, inner),
    ),
    max_leaves=6,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=_trees)
def test_and_or_not_compose_like_set_operations(api: Api, fleet: Fleet, tree: Tree) -> None:
    path = f"/v1/health/service/{fleet.name}"
    atoms = {
        atom: fleet.keys([e["Service"]["ID"] for e in _get(api, path, atom)]) for atom in ATOMS
    }
    entries = _get(api, path, _text(tree))
    assert fleet.keys([e["Service"]["ID"] for e in entries]) == _expected(tree, atoms)


def _text(tree: Tree) -> str:
    if isinstance(tree, str):
        return tree
    if tree[0] == "not":
        return f"not ({_text(tree[1])})"
    return f"({_text(tree[1])}) {tree[0]} ({_text(tree[2])})"


def _expected(tree: Tree, atoms: dict[str, set[str]]) -> set[str]:
    if isinstance(tree, str):
        return atoms[tree]
    if tree[0] == "not":
        return set("abc") - _expected(tree[1], atoms)
    left, right = _expected(tree[1], atoms), _expected(tree[2], atoms)
    return left & right if tree[0] == "and" else left | right


def _get(api: Api, path: str, expression: str) -> object:
    response = api.get(path, filter=expression)
    assert response.status_code == 200, response.text
    return response.json()
