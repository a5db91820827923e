"""deploy/kubernetes/, checked offline: Kubernetes' own schemas, then what the README promises.

No cluster runs here. Every object is validated against the strict JSON schemas (unknown fields
are errors) that kubernetes-validate bundles for the pinned Kubernetes versions; then the
properties a schema cannot see: probes, limits, non-root pods, a shutdown that fits the drain
sequence, matching selectors, an internal admin plane, and env values that the components' own
settings parsers accept.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from discovery.settings import ServiceSettings
from gateway.settings import GatewaySettings
from tests.unit import k8s_manifests as k8s

# The oldest version the manifests claim (preStop `sleep` is on by default from 1.30), and the
# newest the pinned kubernetes-validate (requirements-dev.txt) ships.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
SERVICES = ("catalog", "quote", "echo")
COMPONENTS = (*SERVICES, "gateway")
ADMIN_PORT = 9090
ADMIN_LABEL = {"flask-consul-mesh/gateway-admin": "allowed"}

DOCS = k8s.documents()
DEPLOYMENTS = {d["metadata"]["name"]: d for d in k8s.of_kind("Deployment")}


def validate(doc: dict[str, Any], version: str) -> str:
    """Validate *doc* strictly; return the schema version used."""
    return str(kubernetes_validate.validate(doc, version, strict=True))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("doc", [d for _, d in DOCS], ids=[k8s.doc_id(d) for _, d in DOCS])
def test_every_object_validates_against_the_pinned_kubernetes_schema(doc, version):
    assert validate(doc, version) == version.rsplit(".", 1)[0]


def _catalog() -> dict[str, Any]:
    return copy.deepcopy(DEPLOYMENTS["catalog"])


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.template.spec.containers.0.ports.0.containerPort", "eight thousand"),
        ("spec.template.spec.containers.0.livenessProbes", {}),  # a typo: unknown field
        ("spec.template.spec.containers.0.lifecycle.preStop.sleep", {"second": 5}),
        ("spec.strategy.rollingUpdate.maxSurge", [1]),
        ("spec.template.spec.securityContext.runAsNonRoot", "yes"),
    ],
)
def test_the_validator_rejects_a_broken_manifest(path, value):
    broken = _set(_catalog(), path, value)
    for version in KUBERNETES_VERSIONS:
        with pytest.raises(ValidationError):
            validate(broken, version)


def test_the_validator_rejects_a_deployment_without_a_selector():
    broken = _catalog()
    del broken["spec"]["selector"]
    with pytest.raises(ValidationError):
        validate(broken, KUBERNETES_VERSIONS[0])


def test_the_validator_knows_no_removed_api_version():
    broken = _catalog()
    broken["apiVersion"] = "extensions/v1beta1"  # Deployments left it in Kubernetes 1.16
    with pytest.raises(SchemaNotFoundError):
        validate(broken, KUBERNETES_VERSIONS[0])


def test_the_kustomization_lists_every_manifest_and_sets_the_namespace():
    kustomization = yaml.safe_load((k8s.K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in k8s.manifest_files()]
    (namespace,) = k8s.of_kind("Namespace")
    assert kustomization["namespace"] == namespace["metadata"]["name"]
    assert all("namespace" not in d["metadata"] for _, d in DOCS), "the kustomization sets it"


def test_there_is_one_deployment_per_component():
    assert sorted(DEPLOYMENTS) == sorted(COMPONENTS)


@pytest.mark.parametrize("name", COMPONENTS)
def test_images_are_the_components_own_with_a_pinned_tag(name):
    (container,) = k8s.containers(DEPLOYMENTS[name])
    repository, _, tag = container["image"].rpartition(":")
    assert repository == f"flask-consul-mesh/{name}"
    assert tag and tag != "latest" and "/" not in tag
    tags = {k8s.containers(d)[0]["image"].rpartition(":")[2] for d in DEPLOYMENTS.values()}
    assert tags == {tag}, "one release: every image carries the same tag"


@pytest.mark.parametrize("name", COMPONENTS)
def test_every_deployment_has_health_probes_on_a_declared_port(name):
    (container,) = k8s.containers(DEPLOYMENTS[name])
    health = "/_gateway/health" if name == "gateway" else "/health"
    ports = k8s.container_ports(container)
    for kind in ("readinessProbe", "livenessProbe"):
        probe = container[kind]
        assert list(k8s.probe_paths(probe)) == [health], kind
        if "httpGet" in probe:
            assert probe["httpGet"]["port"] in ports, kind
    assert container["readinessProbe"]["httpGet"]["path"] == health  # 503 takes it out


def test_the_gateway_liveness_probe_asks_the_admin_port_it_is_given():
    (container,) = k8s.containers(DEPLOYMENTS["gateway"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    command = "\n".join(container["livenessProbe"]["exec"]["command"])
    assert f"http://127.0.0.1:{env['GATEWAY_ADMIN_PORT']}/_gateway/health" in command
    assert k8s.container_ports(container)["admin"] == int(env["GATEWAY_ADMIN_PORT"]) == ADMIN_PORT


@pytest.mark.parametrize("name", COMPONENTS)
def test_every_container_has_resource_requests_and_limits(name):
    (container,) = k8s.containers(DEPLOYMENTS[name])
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}, bound


@pytest.mark.parametrize("name", COMPONENTS)
def test_every_pod_runs_as_the_images_non_root_user_with_nothing_extra(name):
    pod = DEPLOYMENTS[name]["spec"]["template"]["spec"]
    folder = "gateway" if name == "gateway" else "services"  # one Dockerfile for every service
    uid = k8s.image_uid(k8s.ROOT / folder / "Dockerfile")
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == context["runAsGroup"] == context["fsGroup"] == uid != 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # else Service "gateway" sets GATEWAY_PORT=tcp://
    (container,) = pod["containers"]
    own = container["securityContext"]
    assert own["allowPrivilegeEscalation"] is False
    assert own["readOnlyRootFilesystem"] is True
    assert own["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]


def _parsed_settings(name: str, tmp_path: Path) -> ServiceSettings | GatewaySettings:
    """The component's settings, parsed by its own code from the manifest's env."""
    deployment = DEPLOYMENTS[name]
    (container,) = k8s.containers(deployment)
    files = {}
    for mount, secret in k8s.mounted_secrets(deployment, container).items():
        for path in (f"{mount}/token", f"{mount}/admin-token"):
            files[path] = str(tmp_path / f"{secret}-{Path(path).name}")
            Path(files[path]).write_text("a-secret\n")
    env = k8s.environment(container, files)
    for variable in ("CONSUL_HTTP_TOKEN_FILE", "GATEWAY_ADMIN_TOKEN_FILE"):
        if variable in env:
            assert env[variable].startswith(str(tmp_path)), f"{variable}: not a mounted Secret"
    assert env["CONSUL_HTTP_ADDR"] == f"http://{k8s.FIELD_VALUES['status.hostIP']}:8500"
    if name == "gateway":
        return GatewaySettings.from_env(env)
    settings = ServiceSettings.from_env(env)
    assert settings.name == name
    assert settings.address == k8s.FIELD_VALUES["status.podIP"]  # what Consul's check asks
    return settings


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_registers_its_pod_ip_with_its_nodes_agent(name, tmp_path):
    settings = _parsed_settings(name, tmp_path)
    assert isinstance(settings, ServiceSettings)
    (container,) = k8s.containers(DEPLOYMENTS[name])
    assert container["ports"][0]["containerPort"] == settings.port


def test_the_gateway_settings_parse_and_open_the_admin_listener_to_the_pod_network(tmp_path):
    settings = _parsed_settings("gateway", tmp_path)
    assert isinstance(settings, GatewaySettings)
    assert settings.admin_bind == "0.0.0.0" and settings.admin_port == ADMIN_PORT
    assert settings.admin_token == "a-secret"
    (container,) = k8s.containers(DEPLOYMENTS["gateway"])
    assert k8s.container_ports(container)["http"] == settings.port


@pytest.mark.parametrize("name", COMPONENTS)
def test_the_grace_period_outlasts_prestop_drain_and_graceful_timeout(name, tmp_path):
    deployment = DEPLOYMENTS[name]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0
    settings = _parsed_settings(name, tmp_path)
    if isinstance(settings, ServiceSettings):
        drain = settings.drain_delay
        graceful = k8s.graceful_timeout(k8s.ROOT / "services/common/gunicorn_defaults.py")
        # A replacement counts as available only once Consul has checked it.
        assert deployment["spec"]["minReadySeconds"] > settings.check_interval
    else:
        drain = 0.0  # the gateway registers nothing: it stops accepting, then drains
        graceful = k8s.graceful_timeout(k8s.ROOT / "gateway/gunicorn.conf.py")
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + graceful


@pytest.mark.parametrize("name", COMPONENTS)
def test_rollouts_never_go_below_the_desired_count(name):
    deployment = DEPLOYMENTS[name]
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling == {"maxSurge": 1, "maxUnavailable": 0}
    assert k8s.selects(deployment["spec"]["selector"], k8s.pod_labels(deployment))


@pytest.mark.parametrize("name", COMPONENTS)
def test_every_deployment_has_exactly_one_disruption_budget(name):
    deployment = DEPLOYMENTS[name]
    budgets = [
        pdb
        for pdb in k8s.of_kind("PodDisruptionBudget")
        if k8s.selects(pdb["spec"]["selector"], k8s.pod_labels(deployment))
    ]
    assert len(budgets) == 1
    assert budgets[0]["spec"]["selector"] == deployment["spec"]["selector"]
    assert budgets[0]["spec"]["maxUnavailable"] == 1
    replicas = deployment["spec"].get("replicas")
    assert replicas is None or replicas >= 2, "a budget of one pod blocks every drain"


def test_every_selector_matches_exactly_one_deployment():
    selectors = [(k8s.doc_id(d), d["spec"]["selector"]) for d in k8s.of_kind("Service")]
    selectors += [
        (k8s.doc_id(d), d["spec"]["selector"]) for d in k8s.of_kind("PodDisruptionBudget")
    ]
    assert selectors
    for what, selector in selectors:
        if "matchLabels" not in selector:
            selector = {"matchLabels": selector}  # a Service's selector is a plain map
        matched = [n for n, d in DEPLOYMENTS.items() if k8s.selects(selector, k8s.pod_labels(d))]
        assert len(matched) == 1, f"{what} selects {matched}"


def test_only_the_gateway_has_a_kubernetes_service_on_its_public_port():
    (service,) = k8s.of_kind("Service")  # the samples are found through Consul
    assert service["metadata"]["name"] == "gateway"
    (port,) = service["spec"]["ports"]
    (container,) = k8s.containers(DEPLOYMENTS["gateway"])
    assert port["port"] == 8080
    assert k8s.container_ports(container)[port["targetPort"]] == 8080


def test_the_autoscaler_drives_the_gateway_deployment():
    (hpa,) = k8s.of_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert hpa["spec"]["minReplicas"] >= 2  # gateways on several nodes
    assert "replicas" not in DEPLOYMENTS["gateway"]["spec"], "the autoscaler owns it"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    (container,) = k8s.containers(DEPLOYMENTS["gateway"])
    assert "cpu" in container["resources"]["requests"], "utilisation is of the request"


def _policies_for(name: str) -> list[dict[str, Any]]:
    """The policies that allow something to *name*'s pods (all but the default deny)."""
    labels = k8s.pod_labels(DEPLOYMENTS[name])
    return [
        p
        for p in k8s.of_kind("NetworkPolicy")
        if p["spec"]["podSelector"] and k8s.selects(p["spec"]["podSelector"], labels)
    ]


def test_ingress_is_denied_unless_a_policy_allows_it():
    deny = [p for p in k8s.of_kind("NetworkPolicy") if p["spec"]["podSelector"] == {}]
    assert [p["spec"] for p in deny] == [{"podSelector": {}, "policyTypes": ["Ingress"]}]


def test_the_admin_port_is_open_only_to_labelled_monitoring_pods():
    admin_rules = []
    for policy in _policies_for("gateway"):
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            if ports and ADMIN_PORT not in ports:
                continue
            admin_rules.append(rule)
            assert ports == [ADMIN_PORT], "the admin port shares no rule with public ones"
            assert rule.get("from"), "a rule without `from` admits everyone"
            for peer in rule["from"]:
                assert set(peer) == {"namespaceSelector", "podSelector"}
                assert peer["namespaceSelector"] == {"matchLabels": ADMIN_LABEL}
                assert peer["podSelector"] == {"matchLabels": ADMIN_LABEL}
    assert len(admin_rules) == 1


def test_the_public_port_is_open_to_everyone():
    public = [
        rule
        for policy in _policies_for("gateway")
        for rule in policy["spec"].get("ingress", [])
        if [p["port"] for p in rule.get("ports", [])] == [8080]
    ]
    assert public == [{"ports": [{"protocol": "TCP", "port": 8080}]}]


@pytest.mark.parametrize("name", SERVICES)
def test_services_take_connections_from_the_app_and_the_consul_agents_only(name):
    (policy,) = _policies_for(name)
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [8000]
    peers = rule["from"]
    assert {
        "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "flask-consul-mesh"}}
    } in peers
    agents = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "consul"}},
        "podSelector": {"matchLabels": {"app": "consul", "component": "client"}},
    }
    assert agents in peers and len(peers) == 2
