"""Every endpoint the registry serves, with the query parameters each one accepts: the table the
README's "The bundled registry" section states.

Anything else is refused loudly rather than ignored: a query parameter not listed for its
endpoint answers 400, a Consul path under /v1/ that is not listed answers 501, and a listed
path with another method answers 405. Every endpoint also takes ``token`` (ACLs) and
``pretty`` (answers are always pretty-printed, as a dev agent's are), and ``ns`` and
``partition`` set to ``default``, the only namespace and partition there are.
"""

from __future__ import annotations

from . import api_acl, api_agent, api_catalog, api_checks, api_node
from .app import Route

#: Blocking queries (``index``, ``wait``), the datacenter, and the consistency modes, which a
#: single node serves alike.
READ_PARAMS = ("dc", "index", "wait", "stale", "consistent", "leader")
#: ``near`` sorts by round-trip time from a node; with one node the order is the same anyway.
_LIST = (*READ_PARAMS, "filter", "near", "node-meta")

ROUTES = [
    # Agent: the node itself.
    Route("/v1/agent/self", ("GET",), api_agent.agent_self, ()),
    Route("/v1/agent/members", ("GET",), api_node.agent_members, ()),
    Route("/v1/agent/maintenance", ("PUT",), api_node.node_maintenance, ("enable", "reason")),
    # Agent: services and checks.
    Route("/v1/agent/services", ("GET",), api_agent.agent_services, ("filter",)),
    Route("/v1/agent/service/", ("GET",), api_agent.agent_service, ("hash", "wait")),
    Route(
        "/v1/agent/service/register",
        ("PUT",),
        api_agent.register_service,
        ("replace-existing-checks",),
    ),
    Route("/v1/agent/service/deregister/", ("PUT",), api_agent.deregister_service, ()),
    Route("/v1/agent/service/maintenance/", ("PUT",), api_agent.maintenance, ("enable", "reason")),
    Route("/v1/agent/checks", ("GET",), api_checks.agent_checks, ("filter",)),
    Route("/v1/agent/check/register", ("PUT",), api_checks.register_check, ()),
    Route("/v1/agent/check/deregister/", ("PUT",), api_checks.deregister_check, ()),
    Route("/v1/agent/check/pass/", ("PUT",), api_checks.ttl_pass, ("note",)),
    Route("/v1/agent/check/warn/", ("PUT",), api_checks.ttl_warn, ("note",)),
    Route("/v1/agent/check/fail/", ("PUT",), api_checks.ttl_fail, ("note",)),
    Route("/v1/agent/check/update/", ("PUT",), api_checks.ttl_update, ()),
    Route("/v1/agent/token/", ("PUT",), api_acl.agent_token, ()),
    # Health.
    Route("/v1/health/service/", ("GET",), api_catalog.health_service, (*_LIST, "tag", "passing")),
    Route("/v1/health/checks/", ("GET",), api_catalog.health_checks, _LIST),
    Route("/v1/health/state/", ("GET",), api_catalog.health_state, _LIST),
    Route("/v1/health/node/", ("GET",), api_node.health_node, (*READ_PARAMS, "filter")),
    # Catalog.
    Route("/v1/catalog/datacenters", ("GET",), api_node.catalog_datacenters, ()),
    Route("/v1/catalog/nodes", ("GET",), api_catalog.catalog_nodes, _LIST),
    Route("/v1/catalog/node/", ("GET",), api_node.catalog_node, (*READ_PARAMS, "filter")),
    Route(
        "/v1/catalog/services",
        ("GET",),
        api_catalog.catalog_services,
        (*READ_PARAMS, "filter", "node-meta"),
    ),
    Route("/v1/catalog/service/", ("GET",), api_catalog.catalog_service, (*_LIST, "tag")),
    # Status.
    Route("/v1/status/leader", ("GET",), api_catalog.status_leader, ("dc",)),
    Route("/v1/status/peers", ("GET",), api_catalog.status_peers, ("dc",)),
    # ACL subset (answers 401 "ACL support disabled" unless started with --acl or --acl-token).
    Route("/v1/acl/bootstrap", ("PUT",), api_acl.bootstrap, ()),
    Route("/v1/acl/policies", ("GET",), api_acl.policy_list, ()),
    Route("/v1/acl/policy", ("PUT",), api_acl.policy_create, ()),
    Route("/v1/acl/policy/", ("GET", "PUT", "DELETE"), api_acl.policy_by_id, ()),
    Route("/v1/acl/policy/name/", ("GET",), api_acl.policy_by_name, ()),
    Route("/v1/acl/tokens", ("GET",), api_acl.token_list, ()),
    Route("/v1/acl/token", ("PUT",), api_acl.token_create, ()),
    Route("/v1/acl/token/", ("GET", "PUT", "DELETE"), api_acl.token_by_accessor, ()),
    Route("/v1/acl/token/self", ("GET",), api_acl.token_self, ()),
]

#: Parameters every endpoint takes (see the module docstring).
COMMON_PARAMS = ("token", "pretty", "ns", "partition")

#: Why a well-known Consul parameter is refused, for a clearer 400 than "not supported".
REFUSED_PARAMS = {
    "ns": "namespaces are a Consul Enterprise feature; the registry has only 'default'",
    "partition": "admin partitions are a Consul Enterprise feature; the registry has only 'default'",
    "peer": "cluster peering is not supported",
    "sg": "sameness groups are not supported",
    "cached": "agent caching is not supported; every read is answered from the registry itself",
    "max_stale": "max_stale is not supported; a single node is never stale",
    "merge-central-config": "config entries are not supported",
    "wan": "the registry has no WAN pool",
    "segment": "network segments are not supported",
}
