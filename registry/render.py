"""The JSON shapes Consul answers with, built from the registry's records.

Field names and nesting follow ``api.AgentService`` (agent endpoints), ``structs.NodeService``
and ``structs.HealthCheck`` (health endpoints) and ``structs.ServiceNode`` (catalog endpoints).
"""

from __future__ import annotations

from typing import Any

from .config import VERSION
from .model import SERVER_RPC_PORT, Check, Node, Service

Json = dict[str, Any]


def node(node: Node, index: int) -> Json:
    """A catalog node (``structs.Node``)."""
    return {
        "ID": node.node_id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": _node_addresses(node),
        "Meta": node_meta(),
        "CreateIndex": index,
        "ModifyIndex": index,
    }


def agent_service(service: Service, datacenter: str) -> Json:
    """A service as the local agent reports it (``api.AgentService``)."""
    out: Json = {
        "ID": service.service_id,
        "Service": service.name,
        "Tags": list(service.tags),
        "Meta": dict(service.meta),
        "Port": service.port,
        "Address": service.address,
    }
    if service.tagged_addresses:
        out["TaggedAddresses"] = service.tagged_addresses
    out.update(
        Weights=dict(service.weights),
        EnableTagOverride=service.enable_tag_override,
        Datacenter=datacenter,
    )
    return out


def node_service(service: Service) -> Json:
    """A service inside a health entry (``structs.NodeService``)."""
    out: Json = {
        "ID": service.service_id,
        "Service": service.name,
        "Tags": list(service.tags),
        "Address": service.address,
    }
    if service.tagged_addresses:
        out["TaggedAddresses"] = service.tagged_addresses
    out.update(
        Meta=dict(service.meta),
        Port=service.port,
        Weights=dict(service.weights),
        EnableTagOverride=service.enable_tag_override,
        Proxy={"Mode": "", "MeshGateway": {}, "Expose": {}},
        Connect={},
        CreateIndex=service.create_index,
        ModifyIndex=service.modify_index,
    )
    return out


def check(check: Check, node_name: str, with_indexes: bool = True) -> Json:
    """A health check (``structs.HealthCheck``); the agent's local copies carry no indexes,
    and the newest output, which the catalog may not have yet (``Check.agent_output``)."""
    output = check.output
    if not with_indexes and check.agent_output is not None:
        output = check.agent_output
    return {
        "Node": node_name,
        "CheckID": check.check_id,
        "Name": check.name,
        "Status": check.status,
        "Notes": check.notes,
        "Output": output,
        "ServiceID": check.service_id,
        "ServiceName": check.service_name,
        "ServiceTags": list(check.service_tags),
        "Type": check.check_type,
        "Interval": check.interval,
        "Timeout": check.timeout,
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": check.create_index if with_indexes else 0,
        "ModifyIndex": check.modify_index if with_indexes else 0,
    }


def health_entry(node_json: Json, service: Service, checks: list[Json]) -> Json:
    """One entry of /v1/health/service/:name (``structs.CheckServiceNode``)."""
    return {"Node": node_json, "Service": node_service(service), "Checks": checks}


def catalog_service(node: Node, service: Service) -> Json:
    """One entry of /v1/catalog/service/:name (``structs.ServiceNode``)."""
    out: Json = {
        "ID": node.node_id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": _node_addresses(node),
        "NodeMeta": node_meta(),
        "ServiceKind": "",
        "ServiceID": service.service_id,
        "ServiceName": service.name,
        "ServiceTags": list(service.tags),
        "ServiceAddress": service.address,
    }
    if service.tagged_addresses:
        out["ServiceTaggedAddresses"] = service.tagged_addresses
    out.update(
        ServiceWeights=dict(service.weights),
        ServiceMeta=dict(service.meta),
        ServicePort=service.port,
        ServiceSocketPath="",
        ServiceEnableTagOverride=service.enable_tag_override,
        ServiceProxy={"Mode": "", "MeshGateway": {}, "Expose": {}},
        ServiceConnect={},
        CreateIndex=service.create_index,
        ModifyIndex=service.modify_index,
    )
    return out


def _node_addresses(node: Node) -> dict[str, str]:
    return {
        "lan": node.address,
        "lan_ipv4": node.address,
        "wan": node.address,
        "wan_ipv4": node.address,
    }


def node_meta() -> dict[str, str]:
    """The node's metadata, as a dev agent sets it."""
    return {"consul-network-segment": "", "consul-version": VERSION}


def server_address(node: Node) -> str:
    """The server RPC address: /v1/status/leader, and Stats.consul.leader_addr of agent/self."""
    return f"{node.address}:{SERVER_RPC_PORT}"


def fresh_coordinate() -> Json:
    """The network coordinate of an agent that has measured nothing yet (serf/coordinate
    ``NewCoordinate(DefaultConfig())``: 8 dimensions at 0, error 1.5, height 10 µs)."""
    return {"Vec": [0.0] * 8, "Error": 1.5, "Adjustment": 0.0, "Height": 1.0e-5}


def member(node: Node, version: str) -> Json:
    """The node as /v1/agent/members lists it (``api.AgentMember``); Status 1 is "alive"."""
    return {
        "Name": node.name,
        "Addr": node.address,
        "Port": 8301,
        "Tags": {
            "role": "consul",
            "dc": node.datacenter,
            "id": node.node_id,
            "port": str(SERVER_RPC_PORT),
            "build": version,
            "bootstrap": "1",
            "segment": "",
            "vsn": "2",
            "vsn_min": "2",
            "vsn_max": "3",
            "raft_vsn": "3",
        },
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    }
