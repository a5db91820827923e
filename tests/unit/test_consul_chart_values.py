"""deploy/kubernetes/consul-values.yaml: the values the README documents for HashiCorp's chart.

The chart ships no values.schema.json, and Helm cannot be installed here, so nothing renders
the chart. These tests check what can be checked offline: the file is YAML, every key is one
that chart 1.2.4's values.yaml defines (a misspelt key is silently ignored by Helm), and the
values are those the README and the app's manifests rely on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.unit import k8s_manifests as k8s

VALUES = k8s.K8S / "consul-values.yaml"
CHART_VERSION = "1.2.4"
# Key paths of chart 1.2.4's values.yaml (github.com/hashicorp/consul-k8s, tag v1.2.4,
# charts/consul/values.yaml) that the file may set; extend it from that file, not by guessing.
CHART_KEYS = {
    "global.name",
    "global.datacenter",
    "global.image",
    "global.acls.manageSystemACLs",
    "global.gossipEncryption.autoGenerate",
    "global.tls.enabled",
    "server.replicas",
    "server.storage",
    "server.resources.requests.cpu",
    "server.resources.requests.memory",
    "server.resources.limits.cpu",
    "server.resources.limits.memory",
    "server.limits.requestLimits.mode",
    "server.limits.requestLimits.readRate",
    "server.limits.requestLimits.writeRate",
    "client.enabled",
    "client.grpc",
    "client.extraConfig",
    "client.resources.requests.cpu",
    "client.resources.requests.memory",
    "client.resources.limits.cpu",
    "client.resources.limits.memory",
    "connectInject.enabled",
    "syncCatalog.enabled",
    "dns.enabled",
    "ui.enabled",
    "ui.service.type",
}


def _values() -> dict[str, Any]:
    return dict(yaml.safe_load(VALUES.read_text()))


def _paths(tree: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _paths(value, f"{path}.")
        else:
            yield path


def test_every_key_is_one_the_pinned_chart_defines():
    assert set(_paths(_values())) <= CHART_KEYS


def test_every_value_set_is_documented_in_the_readme():
    readme = (k8s.ROOT / "README.md").read_text()
    section = readme.split("### Consul: the chart's values", 1)[1].split("\n### ", 1)[0]
    for path in _paths(_values()):
        # Resources are documented per component: `server.resources`, not each of its leaves.
        head, resources, _ = path.partition(".resources.")
        assert f"`{head}{resources.rstrip('.')}`" in section, path


def test_the_install_command_pins_the_chart_version_the_keys_were_checked_against():
    assert f"--version {CHART_VERSION}" in VALUES.read_text()


def test_consul_is_a_pinned_mpl_licensed_release():
    image = _values()["global"]["image"]
    match = re.fullmatch(r"hashicorp/consul:1\.(\d+)\.(\d+)", image)
    assert match, f"{image}: not a pinned hashicorp/consul image"
    minor, patch = int(match.group(1)), int(match.group(2))
    # 1.17 and later are BUSL; so are the 1.15 and 1.16 patches from 2024 on (1.15.8 and 1.16.4
    # were the last of 2023, the last under the MPL).
    last_mpl_patch = {15: 8, 16: 4}
    assert minor <= 16
    assert patch <= last_mpl_patch.get(minor, patch)


def test_servers_form_a_quorum_and_every_node_runs_a_client_agent():
    values = _values()
    assert values["server"]["replicas"] == 3
    assert "bootstrapExpect" not in values["server"]  # the chart derives it from replicas
    assert values["client"]["enabled"] is True  # the pods register with HOST_IP:8500


def test_acls_are_bootstrapped_by_the_chart_and_the_agents_speak_plain_http():
    values = _values()["global"]
    assert values["acls"]["manageSystemACLs"] is True
    assert values["gossipEncryption"]["autoGenerate"] is True
    # The manifests' CONSUL_HTTP_ADDR is http://$(HOST_IP):8500; with TLS on the chart's
    # default httpsOnly would close that port.
    assert values["tls"]["enabled"] is False
    for deployment in k8s.of_kind("Deployment"):
        env = {e["name"]: e.get("value") for e in k8s.containers(deployment)[0]["env"]}
        assert env["CONSUL_HTTP_ADDR"] == "http://$(HOST_IP):8500"


def test_the_mesh_parts_of_the_chart_are_off():
    values = _values()
    for part in ("connectInject", "syncCatalog", "dns"):
        assert values[part]["enabled"] is False, part
