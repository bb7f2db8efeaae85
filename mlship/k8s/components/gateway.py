"""Gateway: the Gateway API entry point and, optionally, its implementation (Envoy Gateway via Helm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlship.k8s import naming
from mlship.k8s.components import child_opts
from mlship.k8s.stack_config import StackConfig

TYPE = "mlship:k8s:Gateway"
ENVOY_GATEWAY_CHART = "oci://docker.io/envoyproxy/gateway-helm"
ENVOY_GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
# Envoy's Prometheus endpoint on every proxy pod: container port "metrics" (19001), /stats/prometheus
# (envoyproxy/gateway v1.7.5 internal/infrastructure/kubernetes/proxy/resource.go and
# examples/kubernetes/metric/pod-monitor.yaml, the PodMonitor Envoy Gateway documents for an existing
# Prometheus Operator).
ENVOY_METRICS_PORT_NAME = "metrics"
ENVOY_METRICS_PATH = "/stats/prometheus"
ENVOY_PROXY_LABELS = {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy"}


def proxy_pod_labels(config: StackConfig) -> dict[str, str]:
    """Labels of the data-plane pods that forward traffic to the models (for the NetworkPolicy)."""
    if config.gateway.proxy_pod_labels is not None:
        return dict(config.gateway.proxy_pod_labels)
    if config.gateway.install:  # Envoy Gateway labels the proxies of each Gateway it runs
        return {
            "gateway.envoyproxy.io/owning-gateway-name": config.gateway.name,
            "gateway.envoyproxy.io/owning-gateway-namespace": config.namespace,
        }
    return {}


def listener(config: StackConfig) -> dict[str, Any]:
    gw = config.gateway
    spec: dict[str, Any] = {
        "name": "https" if gw.tls else "http",
        "protocol": "HTTPS" if gw.tls else "HTTP",
        "port": gw.listener_port,
        "allowedRoutes": {"namespaces": {"from": "Same"}},
    }
    if gw.hostname:
        spec["hostname"] = gw.hostname
    if gw.tls:
        spec["tls"] = {
            "mode": "Terminate",
            "certificateRefs": [{"kind": "Secret", "name": gw.tls.secret_name}],
        }
    return spec


class Gateway(pulumi.ComponentResource):
    """Envoy Gateway (when ``gateway.install``), its GatewayClass, and the Gateway the routes attach to."""

    gateway: k8s.apiextensions.CustomResource
    listener_name: str

    def __init__(
        self,
        name: str,
        config: StackConfig,
        depends_on: Sequence[pulumi.Resource] = (),
        pod_monitor_labels: dict[str, str] | None = None,
        monitoring_crds: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``pod_monitor_labels``: labels the Prometheus selects PodMonitors by (None: the proxies'
        metrics are not scraped). ``monitoring_crds``: what installs the PodMonitor CRD."""
        super().__init__(TYPE, name, None, opts)
        child = child_opts(self, depends_on)
        gw = config.gateway
        depends: list[pulumi.Resource] = list(depends_on)
        if gw.install:
            release = k8s.helm.v3.Release(
                f"{name}-envoy-gateway",
                name="envoy-gateway",
                chart=ENVOY_GATEWAY_CHART,
                version=gw.chart_version,
                namespace=gw.namespace,
                create_namespace=False,
                atomic=True,
                timeout=600,
                values={"deployment": {"replicas": 1 if config.environment == "dev" else 2}},
                opts=child,
            )
            gateway_class = k8s.apiextensions.CustomResource(
                f"{name}-class",
                api_version="gateway.networking.k8s.io/v1",
                kind="GatewayClass",
                metadata={"name": gw.class_name, "labels": naming.common("gateway")},
                spec={"controllerName": ENVOY_GATEWAY_CONTROLLER},
                opts=child_opts(self, [*depends_on, release]),
            )
            depends += [release, gateway_class]
            if pod_monitor_labels is not None:
                self._pod_monitor(name, config, pod_monitor_labels, [*depends_on, *monitoring_crds])
        spec_listener = listener(config)
        self.listener_name = spec_listener["name"]
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="gateway.networking.k8s.io/v1",
            kind="Gateway",
            metadata={"name": gw.name, "namespace": config.namespace, "labels": naming.common("gateway")},
            spec={"gatewayClassName": gw.class_name, "listeners": [spec_listener]},
            opts=child_opts(self, depends),
        )
        # CustomResource exposes its fields dynamically (untyped): metadata is there at run time.
        self.register_outputs({"gateway": self.gateway.metadata})  # type: ignore[attr-defined]

    def _pod_monitor(
        self, name: str, config: StackConfig, labels: dict[str, str], depends_on: Sequence[pulumi.Resource]
    ) -> None:
        """Scrape the gateway's proxies: what the gateway saw per backend (5xx, timeouts, refused)."""
        k8s.apiextensions.CustomResource(
            f"{name}-proxy-podmonitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={
                "name": f"{config.gateway.name}-proxy",
                "namespace": config.gateway.namespace,
                "labels": naming.common("gateway") | labels,
            },
            spec={
                "selector": {"matchLabels": ENVOY_PROXY_LABELS | proxy_pod_labels(config)},
                "namespaceSelector": {"matchNames": [config.gateway.namespace]},
                "podMetricsEndpoints": [
                    {"port": ENVOY_METRICS_PORT_NAME, "path": ENVOY_METRICS_PATH, "interval": "15s"}
                ],
            },
            opts=child_opts(self, depends_on),
        )
