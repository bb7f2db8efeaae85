"""Namespaces and NetworkPolicies under Pulumi's mocks: Pod Security levels and the allowed flows."""

from __future__ import annotations

from pulumi_helpers import find, one, release

from mlship.k8s import naming
from mlship.k8s.components.network_policies import LOKI_HTTP_PORT


def _ns_labels(result, name):
    return one(result, "Namespace", name)["metadata"]["labels"]


def test_pod_security_levels(render):
    result = render("prod")
    config = result.config
    for ns in (config.namespace, config.monitoring.namespace, config.gateway.namespace):
        labels = _ns_labels(result, ns)
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", ns
    agents = _ns_labels(result, config.monitoring.agents_namespace)
    assert agents["pod-security.kubernetes.io/enforce"] == "privileged"
    assert agents["pod-security.kubernetes.io/audit"] == "restricted"
    # every namespaced object lives in a namespace the stack declares
    declared = {n["metadata"]["name"] for n in find(result, "Namespace")}
    used = {m["metadata"]["namespace"] for m in result.manifests if "namespace" in m["metadata"]}
    used |= {r["namespace"] for r in result.releases}
    assert used <= declared


def _policies(result, namespace):
    return {p["metadata"]["name"]: p["spec"] for p in find(result, "NetworkPolicy", namespace=namespace)}


def _selects(selector: dict, labels: dict) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_model_namespace_denies_everything_but_gateway_and_prometheus(render):
    result = render("prod")
    ns = result.config.namespace
    policies = _policies(result, ns)
    deny = policies.pop("default-deny")
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    pod_labels = one(result, "Deployment", "diabetes-regressor-stable")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert all(_selects(p["podSelector"], pod_labels) for p in policies.values())
    assert all("egress" not in p for p in policies.values())  # models never call out
    sources = {}
    for name, spec in policies.items():
        (rule,) = spec["ingress"]
        assert rule["ports"] == [{"port": naming.MODEL_PORT, "protocol": "TCP"}], name
        (peer,) = rule["from"]
        sources[name] = (
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            peer["podSelector"],
        )
    assert sources == {
        "allow-gateway-to-models": (
            result.config.gateway.namespace,
            {
                "matchLabels": {
                    "gateway.envoyproxy.io/owning-gateway-name": "mlship",
                    "gateway.envoyproxy.io/owning-gateway-namespace": ns,
                }
            },
        ),
        "allow-prometheus-to-models": (
            result.config.monitoring.namespace,
            {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        ),
    }


def test_alloy_may_push_to_loki(render):
    result = render("dev")
    mon = result.config.monitoring
    policies = _policies(result, mon.namespace)
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    (rule,) = policies["allow-alloy-to-loki"]["ingress"]
    assert rule["ports"] == [{"port": LOKI_HTTP_PORT, "protocol": "TCP"}]
    (peer,) = rule["from"]
    assert (
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        == release(result, "alloy")["namespace"]
    )
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "alloy"}


def test_no_monitoring_policies_without_monitoring(render):
    result = render("dev", monitoring={"enabled": False})
    assert {p["metadata"]["namespace"] for p in find(result, "NetworkPolicy")} == {result.config.namespace}
    assert set(_policies(result, result.config.namespace)) == {"default-deny", "allow-gateway-to-models"}
