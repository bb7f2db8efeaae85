"""Monitoring: kube-prometheus-stack with Grafana, Loki (monolithic), Alloy, datasources, dashboards, rules.

The alerting/recording rules and the dashboards are the very ones the local environment loads
(``mlship.monitoring``): one source, two environments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlship import names
from mlship.k8s import naming
from mlship.k8s.components import child_opts
from mlship.k8s.components.network_policies import LOKI_HTTP_PORT
from mlship.k8s.stack_config import StackConfig

TYPE = "mlship:k8s:Monitoring"
PROMETHEUS_COMMUNITY = "https://prometheus-community.github.io/helm-charts"
GRAFANA_COMMUNITY = "https://grafana-community.github.io/helm-charts"
GRAFANA = "https://grafana.github.io/helm-charts"
GRAFANA_SECRET = "grafana-admin"  # noqa: S105 - the Secret's name, not its content
PROMETHEUS_DATASOURCE_UID = "prometheus"
LOKI_DATASOURCE_UID = "loki"
LOKI_RELEASE = "loki"
ALLOY_RELEASE = "alloy"
DASHBOARD_FOLDER = "mlship"

_RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def loki_url(config: StackConfig) -> str:
    return f"http://{LOKI_RELEASE}.{config.monitoring.namespace}.svc.cluster.local:{LOKI_HTTP_PORT}"


PROMETHEUS_PORT = 9090  # prometheus.service.port and servicePerReplica.port (chart defaults, kept)
# k3s runs the controller manager, the scheduler and kube-proxy inside its own process (no pods, metrics on
# 127.0.0.1 only) and etcd embedded (metrics only with --etcd-expose-metrics): the chart's Services and
# ServiceMonitors for them find no target, and KubeControllerManagerDown, KubeSchedulerDown, KubeProxyDown
# and etcdMembersDown would fire forever. kube-prometheus-stack 88.0.0 enables all four by default
# (values.yaml `<key>.enabled: true`) and gates both the scrape objects (templates/exporters/<component>/)
# and those alert groups (templates/prometheus/rules-1.14/kubernetes-system-controller-manager.yaml,
# kubernetes-system-scheduler.yaml, kube-scheduler.rules.yaml, kubernetes-system-kube-proxy.yaml, etcd.yaml)
# on the same key. The API server, the kubelet and CoreDNS stay scraped.
K3S_EMBEDDED_COMPONENTS = ("kubeControllerManager", "kubeScheduler", "kubeProxy", "kubeEtcd")


def chart_fullname(config: StackConfig) -> str:
    """The chart's ``kube-prometheus-stack.fullname``: fullnameOverride, truncated to 26 characters."""
    return config.monitoring.release_name[:26].rstrip("-")


def prometheus_url(config: StackConfig) -> str:
    """The Prometheus Service (every replica behind it, ClientIP session affinity): Grafana's datasource."""
    return (
        f"http://{chart_fullname(config)}-prometheus.{config.monitoring.namespace}.svc.cluster.local:"
        f"{PROMETHEUS_PORT}"
    )


def prometheus_replica_service(config: StackConfig, ordinal: int = 0) -> str:
    """The Service of one Prometheus replica (``servicePerReplica``): ``<fullname>-prometheus-<i>``.

    The canary reads one replica only. Two replicas scrape at different instants, so behind one load-balanced
    Service the queries of one observation (stable and canary, counts and histograms) could be answered by
    different replicas and disagree; a counter read from replica A then B can even appear to go backwards.
    The chart's per-replica Service selects the StatefulSet pod ``prometheus-<crname>-<i>``
    (templates/prometheus/serviceperreplica.yaml, 88.0.0). `kubectl port-forward svc/<this> PORT:9090`
    reaches it from outside the cluster: a port-forward enters the pod's network namespace through the
    kubelet, so the monitoring namespace's default-deny ingress NetworkPolicy does not apply to it.
    """
    return f"{chart_fullname(config)}-prometheus-{ordinal}"


def selector_labels(config: StackConfig) -> dict[str, str]:
    """Labels kube-prometheus-stack's Prometheus selects ServiceMonitors and PrometheusRules by.

    With ``*SelectorNilUsesHelmValues: true`` (set explicitly below) the chart's Prometheus selects
    objects labelled ``release: <helm release name>``.
    """
    return {"release": config.monitoring.release_name}


def node_exporter_scrape_config(config: StackConfig) -> dict[str, Any]:
    """Prometheus scrape job for the node exporter the hosts run (roles/node_exporter), one per node.

    kube-prometheus-stack's own node-exporter DaemonSet is disabled (it would bind the same host port,
    hostNetwork, and crash-loop next to the host's): Prometheus discovers the nodes instead and scrapes
    ``<node InternalIP>:<port>``. The job is named ``node-exporter`` because the chart's node rules and
    dashboards select ``job="node-exporter"``, and so do mlship's host rules (``names.JOB_NODE``).
    ``role: node`` targets are ``<InternalIP>:<kubelet port>``; the relabelling swaps the port.
    """
    return {
        "job_name": names.JOB_NODE,
        "kubernetes_sd_configs": [{"role": "node"}],
        "scrape_interval": "30s",
        "relabel_configs": [
            {
                "source_labels": ["__address__"],
                "regex": r"([^:]+):\d+",
                "replacement": f"${{1}}:{config.monitoring.node_exporter_port}",
                "target_label": "__address__",
            },
            # The node's name (what `kubectl get nodes` shows) as instance, and as `node` like the chart's.
            {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "instance"},
            {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"},
        ],
    }


def kube_prometheus_stack_values(config: StackConfig) -> dict[str, Any]:
    mon = config.monitoring
    replicas = 1 if config.environment == "dev" else 2
    return {
        "fullnameOverride": mon.release_name,
        "crds": {"enabled": True},
        # One owner for host metrics on each node: the hosts' node exporter (roles/node_exporter, port
        # 9100 on every k3s node). The chart's DaemonSet (hostNetwork, same port) is not installed; its
        # dashboards are kept, and Prometheus scrapes the hosts' exporter (additionalScrapeConfigs).
        "nodeExporter": {"enabled": False, "forceDeployDashboards": True},
        **{component: {"enabled": False} for component in K3S_EMBEDDED_COMPONENTS},
        "prometheus": {
            # Every client inside the cluster (Grafana) sticks to one replica; the canary reads replica 0
            # through its own Service (prometheus_replica_service).
            "service": {"sessionAffinity": "ClientIP"},
            "servicePerReplica": {"enabled": True},
            "prometheusSpec": {
                "replicas": replicas,
                "retention": mon.prometheus_retention,
                "additionalScrapeConfigs": [node_exporter_scrape_config(config)],
                "serviceMonitorSelectorNilUsesHelmValues": True,
                "ruleSelectorNilUsesHelmValues": True,
                "serviceMonitorNamespaceSelector": {},
                "ruleNamespaceSelector": {},
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": mon.prometheus_storage}},
                        }
                    }
                },
            },
        },
        "alertmanager": {"alertmanagerSpec": {"replicas": replicas}},
        "grafana": {
            "admin": {
                "existingSecret": GRAFANA_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": naming.GRAFANA_DASHBOARD_LABEL,
                    "labelValue": "1",
                    "searchNamespace": mon.namespace,
                    "folderAnnotation": "grafana_folder",
                    "provider": {"foldersFromFilesStructure": True},
                },
                "datasources": {
                    "enabled": True,
                    "label": naming.GRAFANA_DATASOURCE_LABEL,
                    "labelValue": "1",
                    # mlship provisions both datasources itself (ConfigMap below), with fixed uids.
                    "defaultDatasourceEnabled": False,
                },
            },
        },
    }


def loki_values(config: StackConfig) -> dict[str, Any]:
    mon = config.monitoring
    return {
        "deploymentMode": "SingleBinary",
        "loki": {
            "auth_enabled": False,
            "commonConfig": {"replication_factor": 1},
            "storage": {"type": "filesystem"},
            "schemaConfig": {
                "configs": [
                    {
                        "from": "2024-04-01",
                        "store": "tsdb",
                        "object_store": "filesystem",
                        "schema": "v13",
                        "index": {"prefix": "loki_index_", "period": "24h"},
                    }
                ]
            },
            "limits_config": {"retention_period": mon.loki_retention},
            "compactor": {"retention_enabled": True, "delete_request_store": "filesystem"},
            "podSecurityContext": _RESTRICTED_POD,
            "containerSecurityContext": _RESTRICTED_CONTAINER,
        },
        "singleBinary": {"replicas": 1, "persistence": {"enabled": True, "size": mon.loki_storage}},
        "read": {"replicas": 0},
        "write": {"replicas": 0},
        "backend": {"replicas": 0},
        "gateway": {"enabled": False},  # Alloy and Grafana talk to the single binary directly
        "chunksCache": {"enabled": False},
        "resultsCache": {"enabled": False},
        "lokiCanary": {"enabled": False},
        "test": {"enabled": False},
        "minio": {"enabled": False},
    }


def alloy_config(config: StackConfig) -> str:
    """Alloy pipeline: this node's pod logs (CRI), labelled with the pod's model and role, pushed to Loki.

    Pod logs are shipped from here only (the DaemonSet knows each pod's labels and runs as root, so it can
    read /var/log/pods); the host Alloy (roles/log_agent) ships the systemd journal and does not ship pod
    logs. Each line is shipped once.
    """
    role = naming.pod_label_meta(naming.ROLE)
    model = naming.pod_label_meta(naming.MODEL)
    return f"""\
discovery.kubernetes "pods" {{
  role = "pod"
  selectors {{
    role  = "pod"
    field = "spec.nodeName=" + sys.env("HOSTNAME")
  }}
}}

discovery.relabel "pods" {{
  targets = discovery.kubernetes.pods.targets
  rule {{
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }}
  rule {{
    source_labels = ["{model}"]
    target_label  = "model"
  }}
  rule {{
    source_labels = ["{role}"]
    target_label  = "role"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_container_name"]
    separator     = "/"
    target_label  = "__path__"
    replacement   = "/var/log/pods/*$1/*.log"
  }}
}}

local.file_match "pods" {{
  path_targets = discovery.relabel.pods.output
}}

loki.source.file "pods" {{
  targets    = local.file_match.pods.targets
  forward_to = [loki.process.pods.receiver]
}}

loki.process "pods" {{
  stage.cri {{}}
  forward_to = [loki.write.default.receiver]
}}

loki.write "default" {{
  endpoint {{
    url = "{loki_url(config)}/loki/api/v1/push"
  }}
}}
"""


def alloy_values(config: StackConfig) -> dict[str, Any]:
    return {
        "controller": {"type": "daemonset"},
        "alloy": {
            "configMap": {"create": True, "content": alloy_config(config)},
            "mounts": {"varlog": True},  # /var/log/pods, read-only
        },
    }


def datasources(config: StackConfig) -> dict[str, Any]:
    """Grafana datasource provisioning file (fixed uids, so dashboards can reference them)."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": PROMETHEUS_DATASOURCE_UID,
                "access": "proxy",
                "url": prometheus_url(config),
                "isDefault": True,
            },
            {
                "name": "Loki",
                "type": "loki",
                "uid": LOKI_DATASOURCE_UID,
                "access": "proxy",
                "url": loki_url(config),
            },
        ],
    }


def dashboard_configmap_name(file_name: str) -> str:
    stem = PurePosixPath(file_name).stem.lower().replace("_", "-").replace(".", "-")
    return f"mlship-dashboard-{stem}"[:63].rstrip("-")


class Monitoring(pulumi.ComponentResource):
    """Monitoring stack; ``grafana_admin_password`` stays a secret output."""

    grafana_admin_password: pulumi.Output[str]
    releases: dict[str, k8s.helm.v3.Release]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        rule_groups: list[dict[str, Any]],
        dashboards: dict[str, dict[str, Any]],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        child = child_opts(self, depends_on)
        mon = config.monitoring

        if config.grafana_admin_password is not None:
            password = pulumi.Output.secret(config.grafana_admin_password)
        else:
            password = random.RandomPassword(
                f"{name}-grafana-admin", length=32, special=False, opts=child
            ).result
        self.grafana_admin_password = pulumi.Output.secret(password)
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={
                "name": GRAFANA_SECRET,
                "namespace": mon.namespace,
                "labels": naming.common("monitoring"),
            },
            type="Opaque",
            string_data={"admin-user": mon.grafana_admin_user, "admin-password": self.grafana_admin_password},
            opts=child,
        )

        kps = k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack",
            name=mon.release_name,
            chart="kube-prometheus-stack",
            version=mon.kube_prometheus_stack_version,
            repository_opts={"repo": PROMETHEUS_COMMUNITY},
            namespace=mon.namespace,
            create_namespace=False,
            atomic=True,
            timeout=900,
            values=kube_prometheus_stack_values(config),
            opts=child_opts(self, [*depends_on, admin]),
        )
        loki = k8s.helm.v3.Release(
            f"{name}-loki",
            name=LOKI_RELEASE,
            chart="loki",
            version=mon.loki_version,
            repository_opts={"repo": GRAFANA_COMMUNITY},
            namespace=mon.namespace,
            create_namespace=False,
            atomic=True,
            timeout=600,
            values=loki_values(config),
            opts=child,
        )
        alloy = k8s.helm.v3.Release(
            f"{name}-alloy",
            name=ALLOY_RELEASE,
            chart="alloy",
            version=mon.alloy_version,
            repository_opts={"repo": GRAFANA},
            namespace=mon.agents_namespace,
            create_namespace=False,
            atomic=True,
            timeout=600,
            values=alloy_values(config),
            opts=child_opts(self, [*depends_on, loki]),
        )
        self.releases = {"kube-prometheus-stack": kps, "loki": loki, "alloy": alloy}

        k8s.core.v1.ConfigMap(
            f"{name}-datasources",
            metadata={
                "name": "mlship-grafana-datasources",
                "namespace": mon.namespace,
                "labels": naming.common("monitoring") | {naming.GRAFANA_DATASOURCE_LABEL: "1"},
            },
            data={"mlship-datasources.yaml": json.dumps(datasources(config), indent=2)},
            opts=child,
        )
        for file_name, dashboard in sorted(dashboards.items()):
            cm_name = dashboard_configmap_name(file_name)
            k8s.core.v1.ConfigMap(
                f"{name}-{cm_name}",
                metadata={
                    "name": cm_name,
                    "namespace": mon.namespace,
                    "labels": naming.common("monitoring") | {naming.GRAFANA_DASHBOARD_LABEL: "1"},
                    "annotations": {"grafana_folder": DASHBOARD_FOLDER},
                },
                data={PurePosixPath(file_name).name: json.dumps(dashboard, indent=2, sort_keys=True)},
                opts=child,
            )
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={
                "name": "mlship",
                "namespace": mon.namespace,
                "labels": naming.common("monitoring") | selector_labels(config),
            },
            spec={"groups": rule_groups},
            # The CRD comes with the chart: create the rules once it is installed.
            opts=child_opts(self, [*depends_on, kps]),
        )
        self.register_outputs({"grafanaAdminPassword": self.grafana_admin_password})
