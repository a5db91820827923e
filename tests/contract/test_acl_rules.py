"""The double's ACL rules: how it parses and decides, table by table, as Consul's acl/ does.

These test the double's own module (no agent): Consul's semantics are pinned end to end in
test_acl.py, which also runs against a real agent. What the double cannot evaluate it refuses
with 400, naming the rule, instead of deciding wrongly; a real agent accepts such rules.
"""

from __future__ import annotations

import pytest

from registry.acl_rules import RulesError, RuleSet, parse
from registry.launcher import ConsulDouble

from .helpers import Api

pytestmark = pytest.mark.contract

RULES = """
# a comment, and // another
service_prefix "" { policy = "read" }
service_prefix "api-" { policy = "write" }
service_prefix "api-internal-" { policy = "deny" }
service "api-internal-status" { policy = "read" }  /* exact beats any prefix */
service "web" {
  policy = "write"
}
node "consul" { policy = "write" }
"""


@pytest.mark.parametrize(
    ("resource", "access", "name", "allowed"),
    [
        ("service", "write", "web", True),  # exact
        ("service", "read", "web", True),  # write grants read
        ("service", "write", "webx", False),  # "" prefix: read only
        ("service", "read", "webx", True),
        ("service", "write", "api-orders", True),  # longer prefix beats ""
        ("service", "read", "api-internal-db", False),  # deny stops the search
        ("service", "read", "api-internal-status", True),  # exact beats the deny prefix
        ("service", "write", "api-internal-status", False),
        ("node", "write", "consul", True),
        ("node", "read", "consul-2", None),  # no rule: the default policy decides
    ],
)
def test_the_exact_rule_then_the_longest_prefix_decides(
    resource: str, access: str, name: str, allowed: bool | None
) -> None:
    assert RuleSet(parse(RULES)).allows(resource, access, name) is allowed


@pytest.mark.parametrize(
    ("levels", "expected"),
    [(("write", "read"), "write"), (("deny", "write"), "deny"), (("deny", "read"), "deny")],
)
def test_merged_policies_prefer_deny_then_write_then_read(
    levels: tuple[str, ...], expected: str
) -> None:
    rules = [r for level in levels for r in parse(f'service "a" {{ policy = "{level}" }}')]
    assert RuleSet(rules).level("service", "a") == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('key_prefix "" { policy = "read" }', "key_prefix"),
        ('operator = "read"', "operator"),
        ('service "a" { policy = "read" intentions = "write" }', "intentions"),
        ('service "a" { policy = "list" }', "list"),
        ('service "a" { }', "no policy"),
        ('service a { policy = "read" }', "quoted name"),
        ('service "a" { policy = "read"', "closing"),
    ],
)
def test_rules_the_double_cannot_evaluate_are_refused_by_name(text: str, named: str) -> None:
    with pytest.raises(RulesError, match=named):
        parse(text)


def test_a_policy_with_rules_the_double_cannot_evaluate_is_a_400(
    fresh_acl_double: ConsulDouble,
) -> None:
    with Api(fresh_acl_double.addr) as anonymous:
        management = anonymous.put("/v1/acl/bootstrap").json()["SecretID"]
    with Api(fresh_acl_double.addr, management) as manager:
        body = {"Name": "kv", "Rules": 'key_prefix "" { policy = "read" }'}
        response = manager.put("/v1/acl/policy", json=body)
    assert response.status_code == 400
    assert "key_prefix" in response.text
