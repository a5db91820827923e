"""Reading deploy/kubernetes/ for the manifest tests: documents, pods, env and probes.

No cluster and no kustomize binary: the folder is plain YAML that kubectl's built-in kustomize
applies as it is (the kustomization only sets the namespace), so the tests read the files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
NOT_RESOURCES = {"kustomization.yaml", "consul-values.yaml"}  # kustomize input, Helm input
# Downward API values a pod would see; any addresses do, the parsers only check their form.
FIELD_VALUES = {"status.hostIP": "10.0.0.7", "status.podIP": "10.244.1.5"}
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

Doc = dict[str, Any]


def manifest_files() -> list[Path]:
    """The YAML files the kustomization should list."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name not in NOT_RESOURCES)


def documents() -> list[tuple[str, Doc]]:
    """(file name, document) for every Kubernetes object in the folder."""
    return [
        (path.name, doc)
        for path in manifest_files()
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def of_kind(kind: str) -> list[Doc]:
    """Every object of *kind*."""
    return [doc for _, doc in documents() if doc["kind"] == kind]


def doc_id(doc: Doc) -> str:
    """``Kind/name``, for test ids and messages."""
    return f"{doc['kind']}/{doc['metadata']['name']}"


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a label selector (matchLabels only, as used here) selects *labels*."""
    assert set(selector) <= {"matchLabels"}, f"unexpected selector form {selector}"
    wanted = selector.get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def pod_labels(deployment: Doc) -> dict[str, str]:
    """The labels of a Deployment's pods."""
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def containers(deployment: Doc) -> list[Doc]:
    """A Deployment's containers."""
    return list(deployment["spec"]["template"]["spec"]["containers"])


def container_ports(container: Doc) -> dict[str, int]:
    """Port name -> number."""
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def environment(container: Doc, files: Mapping[str, str]) -> dict[str, str]:
    """The container's env as the kubelet would give it, with *files* replacing those paths.

    ``$(VAR)`` must name a variable defined earlier in the list (the kubelet leaves any other
    reference as literal text, which would reach the settings parser as a broken value).
    """
    env: dict[str, str] = {}
    for item in container.get("env", []):
        name = item["name"]
        if "valueFrom" in item:
            value = FIELD_VALUES[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            value = str(item["value"])
            for ref in _REF.findall(value):
                assert ref in env, f"{name} uses $({ref}) before it is defined"
            value = _REF.sub(lambda m: env[m.group(1)], value)
        env[name] = files.get(value, value)
    return env


def mounted_secrets(deployment: Doc, container: Doc) -> dict[str, str]:
    """Mount path -> Secret name, for the container's Secret volumes."""
    volumes = deployment["spec"]["template"]["spec"].get("volumes", [])
    secrets = {v["name"]: v["secret"]["secretName"] for v in volumes if "secret" in v}
    return {
        m["mountPath"]: secrets[m["name"]]
        for m in container.get("volumeMounts", [])
        if m["name"] in secrets
    }


def probe_paths(probe: Doc) -> Iterator[str]:
    """The HTTP paths a probe asks: its httpGet path, or URLs in an exec command."""
    if "httpGet" in probe:
        yield probe["httpGet"]["path"]
    for arg in probe.get("exec", {}).get("command", []):
        yield from re.findall(r"http://127\.0\.0\.1:\d+(/\S*?)[\"']", arg)


def graceful_timeout(config_file: Path) -> int:
    """gunicorn's ``graceful_timeout`` as a config file sets it (read, not imported: importing
    a gunicorn config parses the environment and configures logging)."""
    match = re.search(r"^graceful_timeout = (\d+)$", config_file.read_text(), re.M)
    assert match, f"no graceful_timeout in {config_file}"
    return int(match.group(1))


def image_uid(dockerfile: Path) -> int:
    """The uid the Dockerfile's ``useradd`` gives the app user."""
    match = re.search(r"useradd --uid (\d+)", dockerfile.read_text())
    assert match, f"no useradd --uid in {dockerfile}"
    return int(match.group(1))
