"""ModelDeployment: one model's stable (and canary) Deployment, Services, PDB, HPA and ServiceMonitor.

Each role runs its own Deployment so the gateway can weight traffic between them. Promotion copies
the canary's version into the stable Deployment (as Flagger does): role names never swap, so
dashboards and alerts keyed on ``role`` stay meaningful across releases.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from mlship import names
from mlship.k8s import naming
from mlship.k8s.components import child_opts
from mlship.k8s.stack_config import Model

TYPE = "mlship:k8s:ModelDeployment"
BENTOML_HOME = "/home/mlship/bentoml"
# readOnlyRootFilesystem: the only writable paths are these emptyDir mounts.
WRITABLE_DIRS = {"tmp": "/tmp", "bentoml-home": BENTOML_HOME}  # noqa: S108 - an emptyDir, not a shared /tmp
# Each role's HorizontalPodAutoscaler owns spec.replicas once it has scaled the Deployment: the HPA
# controller writes it through the scale subresource, and server-side apply then records
# "kube-controller-manager" (subresource scale) as its manager. A `pulumi up` applying spec.replicas again
# would conflict with it (pulumi-kubernetes issues #2491, #2569: "conflict with kube-controller-manager
# with subresource scale: .spec.replicas") and fail the promotion's targeted update. The program sets
# replicas on creation only (the first rollout starts at minReplicas, not at the API default of 1) and
# ignores later changes: pulumi-kubernetes (v4.32.0 await.go handleSSAIgnoreFields) then leaves a field
# another manager owns out of its apply, and sends the live value while it still owns it. Dropping the
# field outright instead would reset a Pulumi-owned replicas to 1 on the next apply (Kubernetes docs,
# "Migrating Deployments and StatefulSets to horizontal autoscaling").
DEPLOYMENT_IGNORED_FIELDS = ["spec.replicas"]


class ModelDeployment(pulumi.ComponentResource):
    """Everything one model needs to serve: per-role Deployment/Service/PDB/HPA and its ServiceMonitor."""

    deployments: dict[str, k8s.apps.v1.Deployment]
    services: dict[str, k8s.core.v1.Service]

    def __init__(
        self,
        name: str,
        model: Model,
        namespace: pulumi.Input[str],
        service_monitor_labels: dict[str, str] | None,
        depends_on: Sequence[pulumi.Resource] = (),
        monitoring_crds: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``service_monitor_labels``: labels the Prometheus selects ServiceMonitors by (None: no
        ServiceMonitor). ``monitoring_crds``: what installs the ServiceMonitor CRD."""
        super().__init__(TYPE, name, None, opts)
        child = child_opts(self, depends_on)
        self.deployments = {}
        self.services = {}

        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": model.name, "namespace": namespace, "labels": _labels(model, None)},
            automount_service_account_token=False,
            opts=child,
        )
        for role, version in model.versions().items():
            self.deployments[role] = self._deployment(name, model, role, version, namespace, account, child)
            self.services[role] = self._service(name, model, role, namespace, child)
            self._disruption_budget(name, model, role, namespace, child)
            self._autoscaler(name, model, role, namespace, child)
        if service_monitor_labels is not None:
            monitor_opts = child_opts(self, [*depends_on, *monitoring_crds])
            self._service_monitor(name, model, namespace, service_monitor_labels, monitor_opts)
        self.register_outputs({"services": {r: s.metadata.name for r, s in self.services.items()}})

    @staticmethod
    def _deployment(
        name: str,
        model: Model,
        role: str,
        version: str,
        namespace: pulumi.Input[str],
        account: k8s.core.v1.ServiceAccount,
        opts: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        labels = _labels(model, role) | {naming.VERSION: version}
        replicas = model.replicas if role == names.ROLE_STABLE else model.canary_replicas
        image = model.image_ref(version)
        annotations = {
            "checkov.io/skip1": (
                "CKV_K8S_15=IfNotPresent on purpose: the tag is the model version and never moves, and "
                "an air-gapped node has the image imported, with no registry to pull from"
            )
        }
        if "@sha256:" not in image:
            annotations["checkov.io/skip2"] = (
                "CKV_K8S_43=pinned by an immutable version tag; set `digests` in the stack config "
                "to pin by digest"
            )
        return k8s.apps.v1.Deployment(
            f"{name}-{role}",
            metadata={
                "name": naming.workload_name(model.name, role),
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
            },
            spec={
                "replicas": replicas,
                "revision_history_limit": 5,
                "selector": {"match_labels": naming.selector(model.name, role)},
                "strategy": {
                    "type": "RollingUpdate",
                    "rolling_update": {"max_surge": 1, "max_unavailable": 0},
                },
                "template": {
                    "metadata": {"labels": labels},
                    "spec": _pod_spec(model, role, version, image, account),
                },
            },
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(ignore_changes=DEPLOYMENT_IGNORED_FIELDS)
            ),
        )

    @staticmethod
    def _service(
        name: str, model: Model, role: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions
    ) -> k8s.core.v1.Service:
        return k8s.core.v1.Service(
            f"{name}-{role}",
            metadata={
                "name": naming.workload_name(model.name, role),
                "namespace": namespace,
                "labels": _labels(model, role) | {naming.JOB: names.JOB_MODEL},
            },
            spec={
                "type": "ClusterIP",
                "selector": naming.selector(model.name, role),
                "ports": [
                    {
                        "name": naming.MODEL_PORT_NAME,
                        "port": naming.MODEL_PORT,
                        "target_port": naming.MODEL_PORT_NAME,
                        "protocol": "TCP",
                        "app_protocol": "http",
                    }
                ],
            },
            opts=opts,
        )

    @staticmethod
    def _disruption_budget(
        name: str, model: Model, role: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions
    ) -> None:
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-{role}",
            metadata={
                "name": naming.workload_name(model.name, role),
                "namespace": namespace,
                "labels": _labels(model, role),
            },
            spec={
                "max_unavailable": 1,
                "selector": {"match_labels": naming.selector(model.name, role)},
                "unhealthy_pod_eviction_policy": "AlwaysAllow",
            },
            opts=opts,
        )

    @staticmethod
    def _autoscaler(
        name: str, model: Model, role: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions
    ) -> None:
        minimum = model.replicas if role == names.ROLE_STABLE else model.canary_replicas
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-{role}",
            metadata={
                "name": naming.workload_name(model.name, role),
                "namespace": namespace,
                "labels": _labels(model, role),
            },
            spec={
                "scale_target_ref": {
                    "api_version": "apps/v1",
                    "kind": "Deployment",
                    "name": naming.workload_name(model.name, role),
                },
                "min_replicas": minimum,
                "max_replicas": max(minimum, model.max_replicas),
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "average_utilization": model.target_cpu_utilization,
                            },
                        },
                    }
                ],
                "behavior": {"scale_down": {"stabilization_window_seconds": 300}},
            },
            opts=opts,
        )

    @staticmethod
    def _service_monitor(
        name: str,
        model: Model,
        namespace: pulumi.Input[str],
        selector_labels: dict[str, str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        """Scrape both roles; the pod's role label becomes the Prometheus ``role`` label."""
        k8s.apiextensions.CustomResource(
            f"{name}-servicemonitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={
                "name": model.name,
                "namespace": namespace,
                "labels": _labels(model, None) | selector_labels,
            },
            spec={
                "jobLabel": naming.JOB,
                "selector": {"matchLabels": {naming.MODEL: model.name, naming.JOB: names.JOB_MODEL}},
                "namespaceSelector": {"matchNames": [namespace]},
                "endpoints": [
                    {
                        # The operator adds endpoint="<port name>" to every target (prometheus-operator
                        # v0.93.0 pkg/prometheus/promcfg.go). Without honorLabels BentoML's own
                        # endpoint="/predict" would become exported_endpoint and every query on it
                        # (canary analysis, SLOs, dashboards) would read nothing on Kubernetes. The
                        # server's labels win instead, so Kubernetes and the local environment read
                        # the same series; the model server exports no namespace/pod/job/service label
                        # that could override the target's (tests/integration/test_operator_scrape.py).
                        "honorLabels": True,
                        "port": naming.MODEL_PORT_NAME,
                        "path": "/metrics",
                        "scheme": "http",
                        "interval": model.scrape_interval,
                        "relabelings": [
                            {
                                "action": "replace",
                                "sourceLabels": [naming.pod_label_meta(naming.ROLE)],
                                "targetLabel": names.LABEL_ROLE,
                            },
                            {
                                "action": "replace",
                                "sourceLabels": [naming.pod_label_meta(naming.MODEL)],
                                "targetLabel": "model",
                            },
                        ],
                    }
                ],
            },
            opts=opts,
        )


def _labels(model: Model, role: str | None) -> dict[str, str]:
    labels = naming.common(naming.COMPONENT_MODEL) | {naming.NAME: model.name, naming.MODEL: model.name}
    if role is not None:
        labels |= {naming.ROLE: role, naming.INSTANCE: naming.workload_name(model.name, role)}
    return labels


def _pod_spec(
    model: Model, role: str, version: str, image: str, account: k8s.core.v1.ServiceAccount
) -> k8s.core.v1.PodSpecArgsDict:
    env: list[k8s.core.v1.EnvVarArgsDict] = [
        {"name": "MLSHIP_MODEL_TAG", "value": f"{model.model_tag_name}:{version}"},
        {"name": "MLSHIP_MODEL_NAME", "value": model.model_tag_name},
        {"name": "MLSHIP_ROLE", "value": role},  # the server's JSON logs carry the role too
        {"name": "BENTOML_HOME", "value": BENTOML_HOME},
        {"name": "BENTOML_DO_NOT_TRACK", "value": "true"},
        {"name": "TMPDIR", "value": WRITABLE_DIRS["tmp"]},
    ]
    env += [{"name": k, "value": v} for k, v in sorted(model.env.items())]
    return {
        "service_account_name": account.metadata.name,
        "automount_service_account_token": False,
        "enable_service_links": False,
        "termination_grace_period_seconds": 30,
        "security_context": {
            "run_as_non_root": True,
            "run_as_user": naming.MODEL_UID,
            "run_as_group": naming.MODEL_UID,
            "fs_group": naming.MODEL_UID,
            "seccomp_profile": {"type": "RuntimeDefault"},
        },
        "topology_spread_constraints": [
            {
                "max_skew": 1,
                "topology_key": key,
                "when_unsatisfiable": "ScheduleAnyway",
                "label_selector": {"match_labels": naming.selector(model.name, role)},
                "match_label_keys": ["pod-template-hash"],
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ],
        "containers": [
            {
                "name": "model",
                "image": image,
                # Images are immutable (tag = model version, or a digest): pulled once per node, and
                # an image imported into the node's containerd (air gap, `mlship build --export`) is used
                # as is. "Always" would fail there: there is no registry to ask.
                "image_pull_policy": "IfNotPresent",
                "ports": [
                    {"name": naming.MODEL_PORT_NAME, "container_port": naming.MODEL_PORT, "protocol": "TCP"}
                ],
                "env": env,
                "resources": {
                    "requests": {
                        "cpu": model.resources.requests.cpu,
                        "memory": model.resources.requests.memory,
                    },
                    "limits": {"cpu": model.resources.limits.cpu, "memory": model.resources.limits.memory},
                },
                "startup_probe": {
                    "http_get": _http_get("/livez"),
                    "period_seconds": 5,
                    "failure_threshold": 60,
                },
                "liveness_probe": {
                    "http_get": _http_get("/livez"),
                    "period_seconds": 10,
                    "timeout_seconds": 3,
                    "failure_threshold": 3,
                },
                "readiness_probe": {
                    "http_get": _http_get("/readyz"),
                    "period_seconds": 5,
                    "timeout_seconds": 3,
                    "failure_threshold": 2,
                },
                # Let the gateway drop the endpoint before the server stops accepting requests.
                "lifecycle": {"pre_stop": {"sleep": {"seconds": 5}}},
                "security_context": {
                    "allow_privilege_escalation": False,
                    "privileged": False,
                    "read_only_root_filesystem": True,
                    "run_as_non_root": True,
                    "run_as_user": naming.MODEL_UID,
                    "run_as_group": naming.MODEL_UID,
                    "capabilities": {"drop": ["ALL"]},
                    "seccomp_profile": {"type": "RuntimeDefault"},
                },
                "volume_mounts": [{"name": vol, "mount_path": path} for vol, path in WRITABLE_DIRS.items()],
            }
        ],
        "volumes": [{"name": vol, "empty_dir": {"size_limit": "1Gi"}} for vol in WRITABLE_DIRS],
    }


def _http_get(path: str) -> k8s.core.v1.HTTPGetActionArgsDict:
    return {"path": path, "port": naming.MODEL_PORT_NAME, "scheme": "HTTP"}
