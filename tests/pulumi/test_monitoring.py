"""Monitoring under Pulumi's mocks: charts, datasources, dashboards, rules (one source) and secrets."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi_helpers import find, one, release
from test_model_deployment import _selected, chart_selector

from mlship import names
from mlship.config import load_config
from mlship.k8s import naming
from mlship.k8s import render as renderer
from mlship.k8s.components.monitoring import Monitoring, alloy_config, loki_url
from mlship.k8s.components.network_policies import LOKI_HTTP_PORT
from mlship.monitoring.dashboards import dashboards
from mlship.monitoring.rules import rule_groups

REPO = Path(__file__).resolve().parents[2]
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+$")


def test_rules_are_the_local_ones_and_selected_by_the_chart(render):
    result = render("prod")
    rule = one(result, "PrometheusRule", "mlship")
    assert rule["spec"]["groups"] == rule_groups(load_config(REPO / "mlship.yaml"))
    kps = release(result, "kube-prometheus-stack")
    assert _selected(rule["metadata"]["labels"], chart_selector(kps["values"], "rule"), kps["release"])


def test_dashboards_are_sidecar_configmaps(render):
    result = render("dev")
    kps = release(result, "kube-prometheus-stack")
    sidecar = kps["values"]["grafana"]["sidecar"]["dashboards"]
    expected = dashboards()
    maps = [m for m in find(result, "ConfigMap") if sidecar["label"] in m["metadata"].get("labels", {})]
    assert len(maps) == len(expected)
    rendered = {}
    for cm in maps:
        assert cm["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
        assert cm["metadata"]["namespace"] == sidecar["searchNamespace"]
        ((file_name, body),) = cm["data"].items()
        rendered[file_name] = json.loads(body)
    assert rendered == expected


def test_datasources_point_at_prometheus_and_loki(render):
    result = render("dev")
    kps = release(result, "kube-prometheus-stack")
    sidecar = kps["values"]["grafana"]["sidecar"]["datasources"]
    (cm,) = [m for m in find(result, "ConfigMap") if sidecar["label"] in m["metadata"].get("labels", {})]
    provisioning = json.loads(next(iter(cm["data"].values())))
    by_type = {d["type"]: d for d in provisioning["datasources"]}
    assert set(by_type) == {"prometheus", "loki"}
    # the Prometheus Service of the chart is <fullnameOverride>-prometheus
    assert by_type["prometheus"]["url"].startswith(f"http://{kps['values']['fullnameOverride']}-prometheus.")
    loki = release(result, "loki")
    assert (
        by_type["loki"]["url"]
        == f"http://{loki['release']}.{loki['namespace']}.svc.cluster.local:{LOKI_HTTP_PORT}"
    )
    assert sidecar["defaultDatasourceEnabled"] is False  # ours replace the chart's, no duplicate default


def test_charts_are_pinned_and_loki_is_monolithic(render):
    result = render("prod")
    for chart in result.releases:
        assert EXACT_VERSION.match(chart["version"]), chart
    loki = release(result, "loki")
    assert loki["repository"] == "https://grafana-community.github.io/helm-charts"
    assert loki["values"]["deploymentMode"] == "SingleBinary"
    assert loki["values"]["singleBinary"]["replicas"] == 1
    assert release(result, "alloy")["namespace"] == result.config.monitoring.agents_namespace


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_port_9100_has_one_owner_the_hosts_node_exporter(render, stack):
    """Issue 11 defect 3: the chart's node-exporter DaemonSet (hostNetwork) bound the port of the hosts'
    node exporter (roles/node_exporter) on every k3s node and crash-looped; the atomic monitoring release
    then rolled back. Now the chart installs no exporter and Prometheus scrapes the hosts' one."""
    values = release(render(stack), "kube-prometheus-stack")["values"]
    # `nodeExporter.enabled` is the chart's dependency condition for the prometheus-node-exporter
    # subchart (Chart.yaml @ kube-prometheus-stack-88.0.0): false drops its DaemonSet, Service, monitor.
    assert values["nodeExporter"] == {"enabled": False, "forceDeployDashboards": True}
    assert "prometheus-node-exporter" not in values
    (job,) = values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]
    assert job["job_name"] == names.JOB_NODE == "node-exporter"  # what the chart's node rules select
    assert job["kubernetes_sd_configs"] == [{"role": "node"}]
    # where the hosts' exporter listens: the environment's inventory (wired through group_vars/all.yml)
    inventory = yaml.safe_load((REPO / "inventory" / stack / "hosts.yml").read_text())
    host_port = str(inventory["all"]["vars"]["mlship_node_exporter_port"])
    group_vars = (REPO / "ansible" / "group_vars" / "all.yml").read_text()
    assert re.search(r"node_exporter_web_listen_address:.*:\{\{ mlship_node_exporter_port \}\}", group_vars)
    assert host_port == str(render(stack).config.monitoring.node_exporter_port)
    (address,) = [r for r in job["relabel_configs"] if r["target_label"] == "__address__"]
    assert re.fullmatch(address["regex"], "10.0.0.5:10250")  # role=node targets are <InternalIP>:<kubelet>
    assert re.sub(address["regex"], address["replacement"].replace("${1}", r"\1"), "10.0.0.5:10250") == (
        f"10.0.0.5:{host_port}"
    )


def test_alloy_ships_pod_logs_once_with_model_and_role(render):
    """Pod logs are shipped by the DaemonSet only (it runs as root and reads /var/log/pods, and knows each
    pod's labels); the journal by the host Alloy only (roles/log_agent), so no line is shipped twice."""
    result = render("dev")
    values = release(result, "alloy")["values"]["alloy"]
    content = values["configMap"]["content"]
    assert content == alloy_config(result.config)
    assert values["mounts"]["varlog"] is True  # /var/log/pods from the node
    assert f'url = "{loki_url(result.config)}/loki/api/v1/push"' in content
    assert 'loki.source.file "pods"' in content and "stage.cri" in content
    assert 'replacement   = "/var/log/pods/*$1/*.log"' in content
    assert "__meta_kubernetes_pod_label_mlship_io_role" in content  # logs carry the role, like metrics
    assert "__meta_kubernetes_pod_label_mlship_io_model" in content
    assert "loki.source.journal" not in content  # the host Alloy ships the journal


def test_grafana_admin_password_is_a_secret_output():
    """Without secret config, pulumi-random generates the password; it must stay a secret output."""
    mocks = renderer.CaptureMocks()
    pulumi.runtime.set_mocks(mocks, project="mlship", stack="dev", preview=False)
    from mlship.k8s.stack_config import validate

    config = validate(
        {
            "environment": "dev",
            "models": [{"name": "m", "image": "registry.example.com/m", "stable": "1.0.0"}],
        }
    )
    seen = {}

    def program():
        monitoring = Monitoring("monitoring", config, rule_groups(), {})
        secretness = asyncio.ensure_future(monitoring.grafana_admin_password.is_secret())
        return pulumi.Output.from_input(secretness).apply(lambda s: seen.setdefault("secret", s))

    pulumi.runtime.test(program)()
    assert seen == {"secret": True}
    assert any(r.type == "random:index/randomPassword:RandomPassword" for r in mocks.registered)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_secret_reaches_rendered_files(render, tmp_path, stack):
    password = "correct-horse-battery-staple-42"
    result = render(stack, grafanaAdminPassword=password)
    renderer.write(result, tmp_path)
    secret = one(result, "Secret", "grafana-admin")
    assert secret["stringData"]["admin-password"] == renderer.REDACTED
    text = "".join(p.read_text() for p in tmp_path.rglob("*.yaml"))
    assert password not in text
    assert "mock-password" not in text
    assert any(path.endswith(":stringData") for path in result.secret_paths)
    kps = release(result, "kube-prometheus-stack")
    assert kps["values"]["grafana"]["admin"]["existingSecret"] == secret["metadata"]["name"]
    assert "adminPassword" not in kps["values"]["grafana"]  # never a literal in chart values


def test_grafana_secret_generated_when_no_config(render):
    result = render("dev")
    assert result.config.grafana_admin_password is None
    assert any(r.type == "random:index/randomPassword:RandomPassword" for r in result.resources)
    assert not any(
        r.type.startswith("random:") for r in render("dev", grafanaAdminPassword="x" * 16).resources
    )


def test_restricted_values_for_loki(render):
    values = release(render("dev"), "loki")["values"]["loki"]
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["containerSecurityContext"]["readOnlyRootFilesystem"] is True
    assert naming.GRAFANA_DASHBOARD_LABEL == "grafana_dashboard"


def test_k3s_embedded_components_are_not_scraped(render):
    """Review of issue 11, defect 7: on k3s the controller manager, scheduler and kube-proxy run inside the
    k3s process and etcd is embedded; kube-prometheus-stack 88.0.0 enables their Services, ServiceMonitors
    and Down alerts by default (values.yaml), all gated on `<key>.enabled` (templates/exporters/<component>/,
    templates/prometheus/rules-1.14/: checked at tag kube-prometheus-stack-88.0.0, recorded in versions.yaml).
    Left on, KubeControllerManagerDown, KubeSchedulerDown, KubeProxyDown and etcdMembersDown fire forever."""
    for stack in ("dev", "prod"):
        values = release(render(stack), "kube-prometheus-stack")["values"]
        for key in ("kubeControllerManager", "kubeScheduler", "kubeProxy", "kubeEtcd"):
            assert values[key] == {"enabled": False}, (stack, key)
        for key in ("kubelet", "kubeApiServer", "coreDns"):  # what k3s does expose stays scraped
            assert values.get(key, {}).get("enabled", True) is True
    listed = yaml.safe_load((REPO / "versions.yaml").read_text())["entries"]
    (kps,) = [e for e in listed if e["name"] == "kube-prometheus-stack"]
    assert "kubeControllerManager" in kps["checked"]["values"]


def test_the_canary_reads_one_prometheus_replica(render):
    """Review of issue 11, defect 8: two replicas behind one Service can answer one observation's queries
    from different replicas. The chart makes one Service per replica (servicePerReplica, selecting the pod
    prometheus-<crname>-<i>); the canary reads replica 0 through it, Grafana sticks to one (ClientIP)."""
    from mlship.k8s.components.monitoring import prometheus_replica_service, prometheus_url

    result = render("prod")
    values = release(result, "kube-prometheus-stack")["values"]
    assert values["prometheus"]["prometheusSpec"]["replicas"] == 2
    assert values["prometheus"]["servicePerReplica"] == {"enabled": True}
    assert values["prometheus"]["service"]["sessionAffinity"] == "ClientIP"
    # templates/prometheus/serviceperreplica.yaml: name <fullname>-prometheus-<i>, fullname = the override
    assert values["fullnameOverride"] == "kube-prometheus-stack"
    assert prometheus_replica_service(result.config) == "kube-prometheus-stack-prometheus-0"
    assert prometheus_url(result.config).startswith("http://kube-prometheus-stack-prometheus.monitoring.svc")
    # _helpers.tpl truncates fullname to 26 characters: a long release name keeps the chart's names
    long = render("dev", monitoring={"releaseName": "kube-prometheus-stack-production-eu"})
    assert prometheus_replica_service(long.config) == "kube-prometheus-stack-prod-prometheus-0"
