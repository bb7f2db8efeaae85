"""Namespaces, labelled for Pod Security admission.

Workloads mlship runs (models, gateway, monitoring) get ``restricted``. Node-level collectors
(node-exporter, Alloy tailing /var/log) need hostPath/hostNetwork, which no restricted or baseline
pod may have: they live in their own namespace, enforced ``privileged`` and audited against
``restricted`` so every exception shows up in the audit log.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlship.k8s import naming
from mlship.k8s.stack_config import StackConfig
from mlship.k8s.validate import KUBERNETES_VERSION

TYPE = "mlship:k8s:Namespaces"
PSA = "pod-security.kubernetes.io"


def pod_security_labels(level: str) -> dict[str, str]:
    version = f"v{KUBERNETES_VERSION}"
    labels = {f"{PSA}/enforce": level, f"{PSA}/enforce-version": version}
    for mode in ("audit", "warn"):
        labels |= {f"{PSA}/{mode}": "restricted", f"{PSA}/{mode}-version": version}
    if level == "privileged":  # warnings on every apply would drown real ones; the audit log keeps them
        del labels[f"{PSA}/warn"], labels[f"{PSA}/warn-version"]
    return labels


def levels(config: StackConfig) -> dict[str, str]:
    """Namespace -> Pod Security level enforced."""
    result = {config.namespace: "restricted"}
    if config.gateway.install:
        result[config.gateway.namespace] = "restricted"
    if config.monitoring.enabled:
        result[config.monitoring.namespace] = "restricted"
        result[config.monitoring.agents_namespace] = "privileged"
    return result


class Namespaces(pulumi.ComponentResource):
    """Every namespace the stack owns; other components depend on ``self.resources``."""

    resources: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self.resources = {
            ns: k8s.core.v1.Namespace(
                f"{name}-{ns}",
                metadata={
                    "name": ns,
                    "labels": naming.common("namespace") | pod_security_labels(level),
                },
                opts=pulumi.ResourceOptions(parent=self),
            )
            for ns, level in levels(config).items()
        }
        self.register_outputs({"namespaces": list(self.resources)})
