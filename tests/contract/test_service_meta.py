"""Service Meta is checked as Consul checks it (``structs.ValidateServiceMetadata``).

agent/structs/structs.go: at most 64 pairs; keys of 1 to 128 characters from [a-zA-Z0-9_-],
never starting with "consul-"; values of at most 512 characters. ``AgentRegisterService``
(agent/agent_endpoint.go) answers 400 "Invalid Service Meta: <reason>" and registers nothing.
Each case has one bad pair, since Consul names whichever bad pair its map walk meets first.
"""

from __future__ import annotations

import pytest

from .helpers import Api

pytestmark = pytest.mark.contract

PAIR = "Invalid Service Meta: Couldn't load metadata pair"


@pytest.mark.parametrize(
    ("meta", "text"),
    [
        (
            {"consul-version": "1"},
            f"{PAIR} ('consul-version', '1'): Key prefix 'consul-' is reserved for internal use",
        ),
        (
            {"ok": "v", "long": "v" * 513},
            f"{PAIR} ('long', '{'v' * 513}'): Value is too long (limit: 512 characters)",
        ),
        (
            {f"k{n}": "v" for n in range(65)},
            "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs",
        ),
        ({"bad.key": "v"}, f"{PAIR} ('bad.key', 'v'): Key contains invalid characters"),
        ({"": "v"}, f"{PAIR} ('', 'v'): Key cannot be blank"),
        (
            {"k" * 129: "v"},
            f"{PAIR} ('{'k' * 129}', 'v'): Key is too long (limit: 128 characters)",
        ),
    ],
)
def test_invalid_service_meta_is_refused_with_consuls_reason(
    api: Api, name: str, registered: list[str], meta: dict[str, str], text: str
) -> None:
    registered.append(name)
    response = api.put("/v1/agent/service/register", json={"Name": name, "Meta": meta})
    assert (response.status_code, response.text) == (400, text)
    assert name not in api.get("/v1/agent/services").json()


def test_service_meta_at_every_limit_is_accepted(
    api: Api, name: str, registered: list[str]
) -> None:
    meta = {f"k{n}": "v" for n in range(62)}
    meta["k" * 128] = "v"
    meta["Mixed_Case-key"] = "é" * 256  # 512 bytes
    assert len(meta) == 64
    registered.append(name)
    response = api.put("/v1/agent/service/register", json={"Name": name, "Meta": meta})
    assert response.status_code == 200, response.text
    assert api.get("/v1/agent/services").json()[name]["Meta"] == meta
