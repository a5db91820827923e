"""/v1/agent/self as Consul builds it (``AgentSelf`` and ``Self`` in agent/agent_endpoint.go).

``Self`` has seven fields, always written: Config, DebugConfig, Coord, Member, Stats, Meta, and
xDS (``json:"xDS,omitempty"`` on a pointer that a dev agent, whose gRPC port serves xDS, always
sets). ``Member`` is ``AgentLocalMember()``, the same ``serf.Member`` that /v1/agent/members
lists for the node, so the two must agree field for field.
"""

from __future__ import annotations

import pytest

from .helpers import Api

pytestmark = pytest.mark.contract

SELF_KEYS = {"Config", "DebugConfig", "Coord", "Member", "Stats", "Meta", "xDS"}
#: The fields of serf.Member, as /v1/agent/members writes them.
MEMBER_KEYS = {
    "Name",
    "Addr",
    "Port",
    "Tags",
    "Status",
    "ProtocolMin",
    "ProtocolMax",
    "ProtocolCur",
    "DelegateMin",
    "DelegateMax",
    "DelegateCur",
}


def test_agent_self_has_the_top_level_keys_consul_writes(api: Api) -> None:
    answer = api.get("/v1/agent/self").json()
    assert set(answer) == SELF_KEYS
    assert set(answer["xDS"]) == {"SupportedProxies", "Port", "Ports"}
    assert set(answer["xDS"]["Ports"]) == {"Plaintext", "TLS"}
    assert set(answer["Coord"]) >= {"Vec", "Error", "Adjustment", "Height"}


def test_agent_self_member_is_the_nodes_own_entry_in_agent_members(api: Api) -> None:
    member = api.get("/v1/agent/self").json()["Member"]
    assert set(member) == MEMBER_KEYS
    members = api.get("/v1/agent/members").json()
    own = [entry for entry in members if entry["Name"] == member["Name"]]
    assert own == [member]
