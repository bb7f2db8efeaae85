"""The scrape configuration the Prometheus Operator generates, for plain Prometheus in tests.

Stands in for prometheus-operator v0.93.0 (the operator kube-prometheus-stack 88.0.0 runs), which cannot
run here (no Kubernetes API). ``service_monitor_job`` follows ``generateServiceMonitorConfig`` in
pkg/prometheus/promcfg.go at tag v0.93.0 (f8fafd47) line by line for the fields mlship's ServiceMonitor
uses, in the operator's order: honor_labels (always written), the selector's keep rules (sorted label
keys), the port filter, node/pod/namespace/service/pod/container labels, the running-pod filter, job
(service name, then jobLabel), endpoint = port name, the endpoint's relabelings, then sharding with one
shard. A ServiceMonitor field this emulation does not know is an error, never silently ignored.

Kubernetes service discovery is replaced by file_sd target groups carrying the ``__meta_kubernetes_*``
labels the ``endpoints`` role would attach, built from the rendered Service and Deployment
(``endpoint_target``). A companion module of tests/conftest.py (conftest modules are not importable).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SUPPORTED_SPEC = {"jobLabel", "selector", "namespaceSelector", "endpoints"}
SUPPORTED_ENDPOINT = {"port", "path", "scheme", "interval", "honorLabels", "relabelings", "metricRelabelings"}


def sanitize(name: str) -> str:
    """pkg/prometheus/promcfg.go sanitizeLabelName: every [^a-zA-Z0-9_] becomes _."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _relabel(rc: dict[str, Any]) -> dict[str, Any]:
    """generateRelabelConfig: a RelabelConfig of the CRD as Prometheus config (action lower-cased)."""
    out: dict[str, Any] = {}
    for crd_key, key in (
        ("sourceLabels", "source_labels"),
        ("separator", "separator"),
        ("targetLabel", "target_label"),
        ("regex", "regex"),
        ("modulus", "modulus"),
        ("replacement", "replacement"),
        ("action", "action"),
    ):
        if crd_key in rc:
            out[key] = rc[crd_key].lower() if crd_key == "action" else rc[crd_key]
    return out


def service_monitor_job(monitor: dict[str, Any], index: int, targets_file: Path) -> dict[str, Any]:
    """The scrape job for endpoint ``index`` of a rendered ServiceMonitor (endpoints role, one shard)."""
    spec = monitor["spec"]
    unknown = set(spec) - SUPPORTED_SPEC
    assert not unknown, f"the operator emulation does not know ServiceMonitor fields {unknown}"
    ep = spec["endpoints"][index]
    unknown = set(ep) - SUPPORTED_ENDPOINT
    assert not unknown, f"the operator emulation does not know endpoint fields {unknown}"
    meta = monitor["metadata"]
    job: dict[str, Any] = {
        "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}",
        "honor_labels": bool(ep.get("honorLabels", False)),  # AddHonorLabels: always emitted
        # generateK8SSDConfig: role endpoints, namespaces from namespaceSelector.matchNames
        "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
    }
    for crd_key, key in (("interval", "scrape_interval"), ("path", "metrics_path"), ("scheme", "scheme")):
        if crd_key in ep:
            job[key] = ep[crd_key]
    relabelings: list[dict[str, Any]] = [
        {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}  # initRelabelings
    ]
    match_labels = spec["selector"].get("matchLabels", {})
    assert set(spec["selector"]) <= {"matchLabels"}, "matchExpressions are not emulated"
    for key in sorted(match_labels):
        relabelings.append(
            {
                "action": "keep",
                "source_labels": [
                    f"__meta_kubernetes_service_label_{sanitize(key)}",
                    f"__meta_kubernetes_service_labelpresent_{sanitize(key)}",
                ],
                "regex": f"({match_labels[key]});true",
            }
        )
    relabelings.append(
        {"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": ep["port"]}
    )
    kind_name = [
        "__meta_kubernetes_endpoint_address_target_kind",
        "__meta_kubernetes_endpoint_address_target_name",
    ]
    relabelings += [
        {
            "source_labels": kind_name,
            "separator": ";",
            "regex": "Node;(.*)",
            "replacement": "${1}",
            "target_label": "node",
        },
        {
            "source_labels": kind_name,
            "separator": ";",
            "regex": "Pod;(.*)",
            "replacement": "${1}",
            "target_label": "pod",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"},
    ]
    if spec.get("jobLabel"):
        relabelings.append(
            {
                "source_labels": [f"__meta_kubernetes_service_label_{sanitize(spec['jobLabel'])}"],
                "target_label": "job",
                "regex": "(.+)",
                "replacement": "${1}",
            }
        )
    relabelings.append({"target_label": "endpoint", "replacement": ep["port"]})
    relabelings += [_relabel(rc) for rc in ep.get("relabelings", [])]
    # appendShardingRelabelingWithAddress, one shard: the config reloader substitutes $(SHARD) by 0.
    relabelings += [
        {
            "source_labels": ["__address__", "__tmp_hash"],
            "target_label": "__tmp_hash",
            "regex": "(.+);",
            "replacement": "$1",
            "action": "replace",
        },
        {"source_labels": ["__tmp_hash"], "target_label": "__tmp_hash", "modulus": 1, "action": "hashmod"},
        {"source_labels": ["__tmp_hash", "__tmp_disable_sharding"], "regex": "0;|.+;.+", "action": "keep"},
    ]
    job["relabel_configs"] = relabelings
    if ep.get("metricRelabelings"):
        job["metric_relabel_configs"] = [_relabel(rc) for rc in ep["metricRelabelings"]]
    return job


def endpoint_target(
    service: dict[str, Any], deployment: dict[str, Any], address: str, pod: str
) -> dict[str, Any]:
    """A file_sd target group as Kubernetes' ``endpoints`` role would discover one ready pod of ``service``.

    The labels come from the rendered objects: the Service's labels and port name, the pod template's
    labels and container name (a pod's labels are its template's).
    """
    (port,) = service["spec"]["ports"]
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    labels = {
        "__meta_kubernetes_namespace": service["metadata"]["namespace"],
        "__meta_kubernetes_service_name": service["metadata"]["name"],
        "__meta_kubernetes_endpoint_port_name": port["name"],
        "__meta_kubernetes_endpoint_ready": "true",
        "__meta_kubernetes_endpoint_address_target_kind": "Pod",
        "__meta_kubernetes_endpoint_address_target_name": pod,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_container_name": container["name"],
        "__meta_kubernetes_pod_phase": "Running",
    }
    for key, value in service["metadata"].get("labels", {}).items():
        labels[f"__meta_kubernetes_service_label_{sanitize(key)}"] = value
        labels[f"__meta_kubernetes_service_labelpresent_{sanitize(key)}"] = "true"
    for key, value in template["metadata"]["labels"].items():
        labels[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
        labels[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
    return {"targets": [address], "labels": labels}


def node_target(node_name: str, internal_ip: str, kubelet_port: int = 10250) -> dict[str, Any]:
    """A file_sd target group as Kubernetes' ``node`` role would discover one node."""
    return {
        "targets": [f"{internal_ip}:{kubelet_port}"],
        "labels": {
            "__meta_kubernetes_node_name": node_name,
            "__meta_kubernetes_node_address_InternalIP": internal_ip,
        },
    }
