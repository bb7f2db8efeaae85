"""CanaryRoute: the Gateway API v1 HTTPRoute that splits (or mirrors) a model's traffic.

The weights come from the stack's ``canary`` config, which is what ``mlship canary`` changes on
Kubernetes. Only the prediction endpoints are routed: /metrics, /livez and /readyz stay internal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlship import names
from mlship.k8s import naming
from mlship.k8s.components import child_opts
from mlship.k8s.stack_config import Model

TYPE = "mlship:k8s:CanaryRoute"
ROUTED_ENDPOINTS = (names.ENDPOINT_PREDICT, names.ENDPOINT_PREDICT_BATCH)


def backend_refs(model: Model) -> list[dict[str, Any]]:
    """Weighted backends: stable gets ``100 - weight``, the canary ``weight`` (0 while shadowing)."""
    stable = {"name": naming.workload_name(model.name, names.ROLE_STABLE), "port": naming.MODEL_PORT}
    if model.canary is None:
        return [stable | {"weight": 100}]
    canary = {"name": naming.workload_name(model.name, names.ROLE_CANARY), "port": naming.MODEL_PORT}
    return [stable | {"weight": 100 - model.canary.weight}, canary | {"weight": model.canary.weight}]


def rules(model: Model) -> list[dict[str, Any]]:
    """One rule per prediction endpoint: exact path match, prefix stripped, mirror when shadowing."""
    result = []
    for endpoint in ROUTED_ENDPOINTS:
        filters: list[dict[str, Any]] = []
        if model.route_prefix:
            filters.append(
                {
                    "type": "URLRewrite",
                    "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": endpoint}},
                }
            )
        if model.canary is not None and model.canary.shadow:
            filters.append(
                {
                    "type": "RequestMirror",
                    "requestMirror": {
                        "backendRef": {
                            "name": naming.workload_name(model.name, names.ROLE_CANARY),
                            "port": naming.MODEL_PORT,
                        },
                        "percent": model.canary.shadow_percent,
                    },
                }
            )
        rule: dict[str, Any] = {
            "matches": [
                {"path": {"type": "Exact", "value": f"{model.route_prefix}{endpoint}"}, "method": "POST"}
            ],
            "backendRefs": backend_refs(model),
        }
        if filters:
            rule["filters"] = filters
        result.append(rule)
    return result


class CanaryRoute(pulumi.ComponentResource):
    """The HTTPRoute attaching one model to the shared Gateway."""

    route: k8s.apiextensions.CustomResource

    def __init__(
        self,
        name: str,
        model: Model,
        namespace: pulumi.Input[str],
        gateway_name: str,
        listener: str,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``depends_on`` includes the stable Deployment: after a promotion the route only changes
        once the stable rollout has finished (Pulumi waits for Deployment readiness)."""
        super().__init__(TYPE, name, None, opts)
        spec: dict[str, Any] = {
            "parentRefs": [{"name": gateway_name, "sectionName": listener}],
            "rules": rules(model),
        }
        if model.hostnames:
            spec["hostnames"] = list(model.hostnames)
        self.route = k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version="gateway.networking.k8s.io/v1",
            kind="HTTPRoute",
            metadata={
                "name": model.name,
                "namespace": namespace,
                "labels": naming.common("route") | {naming.MODEL: model.name},
            },
            spec=spec,
            opts=child_opts(self, depends_on),
        )
        # CustomResource exposes its fields dynamically (untyped): metadata is there at run time.
        self.register_outputs({"route": self.route.metadata})  # type: ignore[attr-defined]
