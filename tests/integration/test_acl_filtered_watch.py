"""A watcher whose token may not read everything says so, once per change, not once per read.

Consul answers a list read the token may not fully see with 200 and what the token may read,
and sets ``X-Consul-Results-Filtered-By-ACLs: true``. A gateway token with service:read but
no node:read sees every service with no instance: nothing fails, so the header is the sign.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import requests

from discovery.settings import ConsulSettings
from discovery.watcher import CatalogWatcher
from registry.launcher import ConsulDouble, run_consul_double
from tests.polling import wait_for

pytestmark = pytest.mark.integration

MANAGEMENT = "acl-watch-management-token"
SERVICE_READ = 'service_prefix "" { policy = "read" }'
NODE_READ = 'node_prefix "" { policy = "read" }'
STATE_ANY = "/v1/health/state/any"


@pytest.fixture
def consul() -> Iterator[ConsulDouble]:
    with run_consul_double(None, "--acl-token", MANAGEMENT) as double:
        yield double


def put(consul: ConsulDouble, path: str, body: object) -> dict[str, object]:
    response = requests.put(
        f"{consul.addr}{path}", json=body, headers={"X-Consul-Token": MANAGEMENT}, timeout=5
    )
    response.raise_for_status()
    return response.json() if response.content else {}


def register(consul: ConsulDouble, name: str) -> None:
    check = {"CheckID": f"ttl-{name}", "TTL": "10m", "Status": "passing"}
    body = {"ID": name, "Name": name, "Port": 9000, "Check": check}
    put(consul, "/v1/agent/service/register", body)


def filter_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "X-Consul-Results-Filtered-By-ACLs" in r.getMessage()
    ]


def test_a_token_without_node_read_is_warned_about_once_and_cleared_when_fixed(
    consul: ConsulDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="discovery")
    register(consul, "catalog")
    policy = put(consul, "/v1/acl/policy", {"Name": "gateway", "Rules": SERVICE_READ})
    token = put(consul, "/v1/acl/token", {"Policies": [{"ID": policy["ID"]}]})
    settings = ConsulSettings(port=consul.port, token=str(token["SecretID"]))
    watcher = CatalogWatcher(settings, wait=2.0)
    watcher.start()
    try:
        assert watcher.wait_ready(15), watcher.status()
        wait_for(lambda: STATE_ANY in watcher.status()["filtered_by_acls"], 15, "the flag")
        assert watcher.services["catalog"].instances == ()  # what the token lets it see
        # More answers of the filtered watch, each still filtered: no new warning.
        first_index = watcher.last_index
        for name in ("quote", "echo", "extra"):
            register(consul, name)
        wait_for(lambda: "extra" in watcher.services, 15, "three more answers")
        assert watcher.last_index > first_index
        warnings = filter_warnings(caplog)
        assert len(warnings) == 1, warnings
        assert STATE_ANY in warnings[0] and "node:read" not in warnings[0]
        assert 'node_prefix "" { policy = "read" }' in warnings[0]
        # The operator grants node:read: the next answer is whole, and the watcher says so.
        rules = f"{SERVICE_READ}\n{NODE_READ}"
        put(consul, f"/v1/acl/policy/{policy['ID']}", {"Name": "gateway", "Rules": rules})
        register(consul, "after-the-fix")
        wait_for(lambda: not watcher.status()["filtered_by_acls"], 15, "the flag to clear")
        assert any("no longer filters" in r.getMessage() for r in caplog.records)
        assert len(filter_warnings(caplog)) == 1
    finally:
        watcher.stop()
