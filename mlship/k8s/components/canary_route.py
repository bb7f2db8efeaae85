"""CanaryRoute: the Gateway API v1 HTTPRoute that splits (or mirrors) a model's traffic.

Only the prediction endpoints are routed: /metrics, /livez and /readyz stay internal.

Who owns what: Pulumi creates the route (parentRefs, hostnames, labels, and the first ``spec.rules``
from the stack config), then leaves ``spec.rules`` to the canary controller (``ignore_changes``). Gateway
API makes ``spec.rules`` an atomic list (``+listType=atomic`` in gateway-api v1.4.1
apis/v1/httproute_types.go), so one field manager owns all of it: the controller applies the whole list
server-side as ``mlship-canary`` with force (mlship/canary/backends/kubernetes.py), a step or a rollback
reaches Envoy in seconds, and a later ``pulumi up`` neither reverts it nor conflicts (pulumi-kubernetes
drops an ignored field that another manager owns from its apply). ``rules()`` is the one definition of
the rule list both use.
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
ROUTED_ENDPOINTS = naming.ROUTED_ENDPOINTS


ROUTE_IGNORED_FIELDS = ["spec.rules"]  # owned by the canary controller after creation
ROLE_HEADER = "x-mlship-role"


def _backend(model: Model, role: str, weight: int) -> dict[str, Any]:
    # A per-backend filter makes Envoy Gateway build one cluster per backend (NeedsClusterPerSetting:
    # HasFiltersInSettings, internal/ir/xds.go v1.7.5) instead of one cluster with weighted localities,
    # so the gateway's own counts (5xx, timeouts, connect failures) are per role. The header itself is
    # harmless: the model server ignores it.
    return {
        "name": naming.workload_name(model.name, role),
        "port": naming.MODEL_PORT,
        "weight": weight,
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": ROLE_HEADER, "value": role}]},
            }
        ],
    }


def backend_refs(model: Model) -> list[dict[str, Any]]:
    """Weighted backends: stable gets ``100 - weight``, the canary ``weight`` (0 while shadowing)."""
    weights = {names.ROLE_STABLE: 100}
    if model.canary is not None:
        weights = {names.ROLE_STABLE: 100 - model.canary.weight, names.ROLE_CANARY: model.canary.weight}
    # In naming.BACKEND_INDEX order: the gateway's metrics name backends by their position.
    ordered = sorted(weights, key=naming.BACKEND_INDEX.__getitem__)
    return [_backend(model, role, weights[role]) for role in ordered]


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
        """``depends_on`` includes the stable Deployment: the route is created once stable is ready."""
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
            opts=pulumi.ResourceOptions.merge(
                child_opts(self, depends_on), pulumi.ResourceOptions(ignore_changes=ROUTE_IGNORED_FIELDS)
            ),
        )
        # CustomResource exposes its fields dynamically (untyped): metadata is there at run time.
        self.register_outputs({"route": self.route.metadata})  # type: ignore[attr-defined]
