"""NetworkPolicies: deny by default, then exactly the flows the platform needs.

Model namespace (ingress and egress denied): gateway proxies -> model port, Prometheus -> model
port. Models need no egress at all (no DNS either): they answer, they never call out.
Monitoring namespace (ingress denied): traffic inside the namespace (Grafana -> Prometheus/Loki,
Prometheus -> its own components), Alloy -> Loki push API, the API server -> the operator's
admission webhook. Agents namespace (ingress denied): Prometheus -> Alloy metrics. (Node metrics come from
the hosts' node exporter, outside the pod network: the hosts' firewall admits Prometheus to it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlship.k8s import naming
from mlship.k8s.components import child_opts
from mlship.k8s.components.gateway import proxy_pod_labels
from mlship.k8s.stack_config import StackConfig

TYPE = "mlship:k8s:NetworkPolicies"
NS_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
PROMETHEUS_POD = {"app.kubernetes.io/name": "prometheus"}
LOKI_POD = {"app.kubernetes.io/name": "loki"}
ALLOY_POD = {"app.kubernetes.io/name": "alloy"}
LOKI_HTTP_PORT = 3100
ALLOY_HTTP_PORT = 12345
OPERATOR_WEBHOOK_PORT = 10250


def _peer(namespace: str, pod_labels: dict[str, str] | None) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespace_selector": {"match_labels": {NS_LABEL: namespace}}}
    if pod_labels:
        peer["pod_selector"] = {"match_labels": pod_labels}
    return peer


def _ports(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def policies(config: StackConfig) -> list[dict[str, Any]]:
    """(name, namespace, spec) of every NetworkPolicy, as plain data the component declares."""
    model_pods = {"match_labels": {naming.COMPONENT: naming.COMPONENT_MODEL}}
    mon = config.monitoring
    result: list[dict[str, Any]] = [
        {
            "name": "default-deny",
            "namespace": config.namespace,
            "spec": {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]},
        },
        {
            "name": "allow-gateway-to-models",
            "namespace": config.namespace,
            "spec": {
                "pod_selector": model_pods,
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from": [_peer(config.gateway.namespace, proxy_pod_labels(config))],
                        "ports": _ports(naming.MODEL_PORT),
                    }
                ],
            },
        },
    ]
    if not mon.enabled:
        return result
    result += [
        {
            "name": "allow-prometheus-to-models",
            "namespace": config.namespace,
            "spec": {
                "pod_selector": model_pods,
                "policy_types": ["Ingress"],
                "ingress": [
                    {"from": [_peer(mon.namespace, PROMETHEUS_POD)], "ports": _ports(naming.MODEL_PORT)}
                ],
            },
        },
        {
            "name": "default-deny-ingress",
            "namespace": mon.namespace,
            "spec": {"pod_selector": {}, "policy_types": ["Ingress"]},
        },
        {
            "name": "allow-same-namespace",
            "namespace": mon.namespace,
            "spec": {
                "pod_selector": {},
                "policy_types": ["Ingress"],
                "ingress": [{"from": [{"pod_selector": {}}]}],
            },
        },
        {
            "name": "allow-alloy-to-loki",
            "namespace": mon.namespace,
            "spec": {
                "pod_selector": {"match_labels": LOKI_POD},
                "policy_types": ["Ingress"],
                "ingress": [
                    {"from": [_peer(mon.agents_namespace, ALLOY_POD)], "ports": _ports(LOKI_HTTP_PORT)}
                ],
            },
        },
        {
            # The API server is not a pod: its address depends on the cluster, so only the port is fixed.
            "name": "allow-apiserver-to-operator-webhook",
            "namespace": mon.namespace,
            "spec": {
                "pod_selector": {"match_labels": {"app.kubernetes.io/component": "prometheus-operator"}},
                "policy_types": ["Ingress"],
                "ingress": [{"ports": _ports(OPERATOR_WEBHOOK_PORT)}],
            },
        },
        {
            "name": "default-deny-ingress",
            "namespace": mon.agents_namespace,
            "spec": {"pod_selector": {}, "policy_types": ["Ingress"]},
        },
        {
            "name": "allow-prometheus-to-agents",
            "namespace": mon.agents_namespace,
            "spec": {
                "pod_selector": {},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from": [_peer(mon.namespace, PROMETHEUS_POD)],
                        "ports": _ports(ALLOY_HTTP_PORT),
                    }
                ],
            },
        },
    ]
    return result


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        for policy in policies(config):
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy['namespace']}-{policy['name']}",
                metadata={
                    "name": policy["name"],
                    "namespace": policy["namespace"],
                    "labels": naming.common("network-policy"),
                },
                spec=policy["spec"],
                opts=child_opts(self, depends_on),
            )
        self.register_outputs({})
