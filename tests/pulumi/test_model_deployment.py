"""ModelDeployment under Pulumi's mocks: what each role's pods, Services, PDB, HPA and ServiceMonitor are."""

from __future__ import annotations

import pytest
from pulumi_helpers import find, one, release, with_canary

from mlship import names
from mlship.k8s import naming
from mlship.k8s.render import RenderResult
from mlship.k8s.stack_config import parse_quantity

MODEL = "diabetes-regressor"


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_replicas_and_limits_follow_the_stack(render, stack):
    result = render(stack)
    model = result.config.models[0]
    deployment = one(result, "Deployment", f"{MODEL}-stable")
    assert deployment["spec"]["replicas"] == model.replicas
    resources = container(deployment)["resources"]
    assert resources == {
        "requests": {"cpu": model.resources.requests.cpu, "memory": model.resources.requests.memory},
        "limits": {"cpu": model.resources.limits.cpu, "memory": model.resources.limits.memory},
    }
    hpa = one(result, "HorizontalPodAutoscaler", f"{MODEL}-stable")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (model.replicas, model.max_replicas)
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_stacks_differ_in_size(render):
    dev, prod = (one(render(s), "Deployment", f"{MODEL}-stable") for s in ("dev", "prod"))
    assert dev["spec"]["replicas"] < prod["spec"]["replicas"]
    dev_mem, prod_mem = (parse_quantity(container(d)["resources"]["limits"]["memory"]) for d in (dev, prod))
    assert dev_mem < prod_mem


def test_pod_is_restricted_and_probed(render):
    deployment = one(render("prod"), "Deployment", f"{MODEL}-stable")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == naming.MODEL_UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    ctx = c["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # probes, the Service and the ServiceMonitor all use the one named port 3000
    assert c["ports"] == [
        {"containerPort": naming.MODEL_PORT, "name": naming.MODEL_PORT_NAME, "protocol": "TCP"}
    ]
    # read-only root: every writable path is an emptyDir
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == {"/tmp", "/home/mlship/bentoml"}
    assert all("emptyDir" in volumes[name] for name in mounts.values())
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["BENTOML_HOME"] in mounts
    assert env["TMPDIR"] in mounts


def test_image_is_pinned_and_model_tag_selected(render):
    result = render("staging", models=with_canary("staging", weight=0, shadow=True))
    model = result.config.models[0]
    for role, version in (("stable", model.stable), ("canary", model.canary.version)):
        c = container(one(result, "Deployment", f"{MODEL}-{role}"))
        assert c["image"] == f"{model.image}:{version}"
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["MLSHIP_MODEL_TAG"] == f"{model.model_tag_name}:{version}"
        assert env["MLSHIP_ROLE"] == role


def test_digest_pins_the_image_and_drops_the_tag_skip(render):
    digest = "sha256:" + "ab" * 32
    models = with_canary("dev", weight=5)
    models[0]["digests"] = {models[0]["stable"]: digest}
    result = render("dev", models=models)
    stable = one(result, "Deployment", f"{MODEL}-stable")
    assert container(stable)["image"].endswith(f"@{digest}")
    assert "checkov.io/skip2" not in stable["metadata"].get("annotations", {})
    canary = one(result, "Deployment", f"{MODEL}-canary")  # no digest for 2.0.0: tag, with the reasoned skip
    assert canary["metadata"]["annotations"]["checkov.io/skip2"].startswith("CKV_K8S_43=")


def test_canary_role_exists_only_with_a_canary(render):
    assert find(render("dev"), "Deployment", f"{MODEL}-canary") == []
    result = render("dev", models=with_canary("dev", weight=10))
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        assert len(find(result, kind, f"{MODEL}-canary")) == 1, kind


def test_services_select_their_role_pods(render):
    result = render("staging", models=with_canary("staging", weight=0, shadow=True))
    for role in names.ROLES:
        deployment = one(result, "Deployment", f"{MODEL}-{role}")
        service = one(result, "Service", f"{MODEL}-{role}")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = service["spec"]["selector"]
        assert selector.items() <= pod_labels.items()
        assert pod_labels[naming.ROLE] == role
        other = "canary" if role == "stable" else "stable"
        assert selector[naming.ROLE] != other
        pdb = one(result, "PodDisruptionBudget", f"{MODEL}-{role}")
        assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_topology_spread_over_zones_and_nodes(render):
    pod = one(render("prod"), "Deployment", f"{MODEL}-stable")["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def chart_selector(kps_values: dict, kind: str) -> dict:
    """kube-prometheus-stack's rule for Prometheus' serviceMonitorSelector / ruleSelector.

    The chart (templates/prometheus/prometheus.yaml) uses the explicit selector when set; else, when
    `<kind>SelectorNilUsesHelmValues` is true (the default), it selects `release: <release name>`;
    else it selects everything.
    """
    spec = kps_values.get("prometheus", {}).get("prometheusSpec", {})
    if spec.get(f"{kind}Selector"):
        return spec[f"{kind}Selector"]["matchLabels"]
    if spec.get(f"{kind}SelectorNilUsesHelmValues", True):
        return {"release": "__RELEASE__"}
    return {}


def _selected(labels: dict, selector: dict, release_name: str) -> bool:
    wanted = {k: release_name if v == "__RELEASE__" else v for k, v in selector.items()}
    return wanted.items() <= labels.items()


def test_service_monitor_is_selected_by_the_chart(render):
    result: RenderResult = render("prod")
    kps = release(result, "kube-prometheus-stack")
    monitor = one(result, "ServiceMonitor", MODEL)
    assert _selected(
        monitor["metadata"]["labels"], chart_selector(kps["values"], "serviceMonitor"), kps["release"]
    )
    namespaces = kps["values"]["prometheus"]["prometheusSpec"]["serviceMonitorNamespaceSelector"]
    assert namespaces == {}  # {} = every namespace, so the model namespace is watched


def test_service_monitor_scrapes_both_roles_and_labels_the_role(render):
    result = render("staging", models=with_canary("staging", weight=0, shadow=True))
    monitor = one(result, "ServiceMonitor", MODEL)
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [s for s in find(result, "Service") if selector.items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in scraped} == {f"{MODEL}-stable", f"{MODEL}-canary"}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in scraped)
    assert endpoint["path"] == "/metrics"
    relabel = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert relabel[names.LABEL_ROLE] == ["__meta_kubernetes_pod_label_mlship_io_role"]
    # the job label is taken from the Service, so rules written for the local job name hold on Kubernetes
    job_label = monitor["spec"]["jobLabel"]
    assert {s["metadata"]["labels"][job_label] for s in scraped} == {names.JOB_MODEL}


def test_no_service_monitor_without_monitoring(render):
    result = render("dev", monitoring={"enabled": False})
    assert find(result, "ServiceMonitor") == []
    assert find(result, "PrometheusRule") == []
    assert result.releases and all(r["release"] == "envoy-gateway" for r in result.releases)
