"""Names and labels the Kubernetes objects share (selectors, relabeling, NetworkPolicies, policies)."""

from __future__ import annotations

from mlship import names

MODEL_PORT = 3000  # BentoML serves the API, /livez, /readyz and /metrics on this port
MODEL_PORT_NAME = "http"
MODEL_UID = 10001  # the model server image runs as this non-root uid/gid

PART_OF = "app.kubernetes.io/part-of"
NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
VERSION = "app.kubernetes.io/version"
MANAGED_BY = "app.kubernetes.io/managed-by"
MODEL = "mlship.io/model"
ROLE = "mlship.io/role"
JOB = "mlship.io/job"  # Service label the ServiceMonitor takes the Prometheus `job` from

COMPONENT_MODEL = "model-server"

# Position of each role in every HTTPRoute rule's backendRefs. Envoy Gateway names the cluster of backend
# j of rule i "httproute/<namespace>/<route>/rule/<i>/backend/<j>" (internal/gatewayapi/helpers.go,
# v1.7.5): the canary analysis reads the gateway's per-role counts by this index.
BACKEND_INDEX = {names.ROLE_STABLE: 0, names.ROLE_CANARY: 1}
# The HTTPRoute's rules, in order: one per routed endpoint (rule i serves ROUTED_ENDPOINTS[i]).
ROUTED_ENDPOINTS = (names.ENDPOINT_PREDICT, names.ENDPOINT_PREDICT_BATCH)

# kube-prometheus-stack's Grafana sidecar picks up ConfigMaps carrying these labels.
GRAFANA_DASHBOARD_LABEL = "grafana_dashboard"
GRAFANA_DATASOURCE_LABEL = "grafana_datasource"


def common(component: str) -> dict[str, str]:
    return {PART_OF: "mlship", MANAGED_BY: "pulumi", COMPONENT: component}


def workload_name(model: str, role: str) -> str:
    """Deployment and Service of one role of one model, e.g. ``diabetes-regressor-canary``."""
    if role not in names.ROLES:
        raise ValueError(f"unknown role {role!r}, expected one of {names.ROLES}")
    return f"{model}-{role}"


def selector(model: str, role: str) -> dict[str, str]:
    """Pod selector of one role. The version is not part of it: promotion changes the version."""
    return {MODEL: model, ROLE: role}


def pod_label_meta(label: str) -> str:
    """Prometheus service-discovery meta label holding a pod label (non-alphanumerics become _)."""
    sanitized = "".join(c if c.isalnum() else "_" for c in label)
    return f"__meta_kubernetes_pod_label_{sanitized}"
