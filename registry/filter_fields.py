"""The fields each endpoint's ``?filter=`` may select, from the "Filtering" tables of Consul's
API docs (agent/service, agent/check, catalog, health).

Connect-only fields (``Proxy.*``, ``Connect.Native``) are left out: the registry keeps no
Connect data, so a filter naming them is refused as an unknown selector instead of matching
empty values. The health check's ``Type``, ``Interval``, ``Timeout`` and ``ExposedPort`` are
``structs.HealthCheck`` fields that bexpr finds by reflection although the tables omit them.
"""

from __future__ import annotations

from .filter_eval import BOOL, INT, STRING, ListOf, MapOf, Struct

_WEIGHTS = Struct({"Passing": INT, "Warning": INT})
_SERVICE_ADDRESS = Struct({"Address": STRING, "Port": INT})

#: ``structs.HealthCheck``: /v1/agent/checks, /v1/health/checks, /state and /node.
CHECK = Struct(
    {
        "Node": STRING,
        "CheckID": STRING,
        "Name": STRING,
        "Status": STRING,
        "Notes": STRING,
        "Output": STRING,
        "ServiceID": STRING,
        "ServiceName": STRING,
        "ServiceTags": ListOf(STRING),
        "Type": STRING,
        "Interval": STRING,
        "Timeout": STRING,
        "ExposedPort": INT,
    }
)

#: ``structs.Node``: /v1/catalog/nodes, and ``Node`` in health entries.
NODE = Struct(
    {
        "ID": STRING,
        "Node": STRING,
        "Address": STRING,
        "Datacenter": STRING,
        "TaggedAddresses": MapOf(STRING),
        "Meta": MapOf(STRING),
    }
)

#: ``structs.NodeService``: /v1/catalog/node/:node services, and ``Service`` in health entries.
NODE_SERVICE = Struct(
    {
        "Kind": STRING,
        "ID": STRING,
        "Service": STRING,
        "Tags": ListOf(STRING),
        "Address": STRING,
        "TaggedAddresses": MapOf(_SERVICE_ADDRESS),
        "Meta": MapOf(STRING),
        "Port": INT,
        "Weights": _WEIGHTS,
        "EnableTagOverride": BOOL,
    }
)

#: ``api.AgentService``: /v1/agent/services.
AGENT_SERVICE = Struct({**NODE_SERVICE.fields, "Datacenter": STRING})

#: ``structs.CheckServiceNode``: /v1/health/service/:service.
HEALTH_ENTRY = Struct({"Node": NODE, "Service": NODE_SERVICE, "Checks": ListOf(CHECK)})

#: ``structs.ServiceNode``: /v1/catalog/service/:service and /v1/catalog/services.
CATALOG_SERVICE = Struct(
    {
        "ID": STRING,
        "Node": STRING,
        "Address": STRING,
        "Datacenter": STRING,
        "TaggedAddresses": MapOf(STRING),
        "NodeMeta": MapOf(STRING),
        "ServiceKind": STRING,
        "ServiceID": STRING,
        "ServiceName": STRING,
        "ServiceTags": ListOf(STRING),
        "ServiceAddress": STRING,
        "ServiceTaggedAddresses": MapOf(_SERVICE_ADDRESS),
        "ServiceWeights": _WEIGHTS,
        "ServiceMeta": MapOf(STRING),
        "ServicePort": INT,
        "ServiceEnableTagOverride": BOOL,
    }
)
