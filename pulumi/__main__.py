"""mlship's Kubernetes environment (`pulumi up -s dev|staging|prod`).

This file only reads the validated stack config and composes the components; each component is a
small module under ``mlship/k8s/components``. Render it offline with
``mlship render --stack dev --out build/dev``.
"""

from pathlib import Path

import pulumi

from mlship import names
from mlship.config import load_config
from mlship.k8s.components.canary_route import CanaryRoute
from mlship.k8s.components.gateway import Gateway
from mlship.k8s.components.model_deployment import ModelDeployment
from mlship.k8s.components.monitoring import Monitoring, selector_labels
from mlship.k8s.components.namespaces import Namespaces
from mlship.k8s.components.network_policies import NetworkPolicies
from mlship.k8s.stack_config import from_pulumi_runtime
from mlship.monitoring.dashboards import dashboards
from mlship.monitoring.rules import rule_groups

# Validated before any resource is declared: a bad key stops here, naming the key.
config = from_pulumi_runtime()
# The SLOs and thresholds behind the rules come from the project's mlship.yaml, as for local runs.
project = load_config(Path(__file__).resolve().parent.parent / "mlship.yaml")

namespaces = Namespaces("namespaces", config)
ns = list(namespaces.resources.values())
NetworkPolicies("network-policies", config, depends_on=ns)

monitoring = None
if config.monitoring.enabled:
    monitoring = Monitoring("monitoring", config, rule_groups(project), dashboards(), depends_on=ns)
gateway = Gateway(
    "gateway",
    config,
    depends_on=ns,
    pod_monitor_labels=selector_labels(config) if monitoring else None,
    monitoring_crds=[monitoring.releases["kube-prometheus-stack"]] if monitoring else [],
)

for model in config.models:
    deployment = ModelDeployment(
        model.name,
        model,
        namespace=config.namespace,
        service_monitor_labels=selector_labels(config) if monitoring else None,
        depends_on=ns,
        monitoring_crds=[monitoring.releases["kube-prometheus-stack"]] if monitoring else [],
    )
    CanaryRoute(
        model.name,
        model,
        namespace=config.namespace,
        gateway_name=config.gateway.name,
        listener=gateway.listener_name,
        depends_on=[*ns, gateway.gateway, deployment.deployments[names.ROLE_STABLE]],
    )

pulumi.export(
    "models",
    {
        m.name: {
            "stable": m.stable,
            "canary": m.canary.version if m.canary else None,
            "weight": m.canary.weight if m.canary else 0,
            "shadow": bool(m.canary and m.canary.shadow),
            "path": m.route_prefix or "/",
        }
        for m in config.models
    },
)
pulumi.export("gateway", {"name": config.gateway.name, "namespace": config.namespace})
if monitoring:
    pulumi.export("grafanaAdminPassword", monitoring.grafana_admin_password)
