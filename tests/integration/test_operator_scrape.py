"""Kubernetes metrics as the Prometheus Operator scrapes them, read by every query mlship runs there.

Issue 11 defect 4: the Prometheus Operator adds ``endpoint="<port name>"`` to every ServiceMonitor target;
without ``honorLabels`` BentoML's own ``endpoint="/predict"`` became ``exported_endpoint``, and the canary
analysis, the SLO rules and the dashboards, which filter on ``endpoint="/predict"``, read nothing: stable
"had no traffic" and every Kubernetes canary was rolled back.

What is real here: Debian's Prometheus, the model servers (BentoML, the baseline as stable and the
candidate as canary, under valid and invalid traffic), Debian's node exporter, and the rules and
dashboards exactly as rendered into the PrometheusRule and ConfigMaps. What stands in for the cluster:
the scrape configuration is what prometheus-operator v0.93.0 generates for the rendered ServiceMonitor
(tests/operator_emulation.py), with Kubernetes service discovery replaced by file_sd target groups that
carry the labels the ``endpoints``/``node`` roles would attach (taken from the rendered Service and
Deployment). The host node exporter job is the rendered ``additionalScrapeConfigs`` entry, pointed at a
free loopback port instead of 9100 (tests never bind default ports).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from operator_emulation import endpoint_target, node_target, service_monitor_job
from prometheus_process import running_prometheus

from mlship import names
from mlship.canary.analysis import kubernetes_queries
from mlship.k8s import render as renderer
from mlship.k8s.stack_config import read_stack_file
from mlship.local import load
from mlship.local.processes import free_ports, spawn, stop, wait_until
from mlship.monitoring import live
from mlship.promclient import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROGRAM = Path(__file__).resolve().parents[2] / "pulumi"
STACK = "prod"
MODEL = "diabetes-regressor"
# Produced only by local components: the rollout's state (the runner's textfile for the local node
# exporter) and application-level mirroring (the local stable server). On Kubernetes the gateway mirrors
# and the canary's server counts the mirrored calls (kubernetes_queries shadow_*). Outcomes too: the
# Gateway routes no /feedback and no store runs in the cluster yet (docs/feedback.md, Limits). And the
# router's own series (HAProxy's exporter): on Kubernetes the Gateway routes, read by the runner instead.
LOCAL_ONLY = frozenset({"rollout", "shadow", "outcomes", "rejected-outcomes", "router"})
COVERS = frozenset({"canary", "rejections"})
DEADLINE_S = 150


def _one(result: renderer.RenderResult, kind: str, name: str) -> dict:
    (found,) = [m for m in result.manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


@pytest.fixture(scope="module")
def rendered(models) -> renderer.RenderResult:
    """The prod stack during a release: the candidate as canary at 10%."""
    raw, _ = read_stack_file(PROGRAM / f"Pulumi.{STACK}.yaml")
    stack_models = raw["models"]
    stack_models[0] |= {
        "stable": models["baseline"].version,
        "canary": {"version": models["candidate"].version, "weight": 10},
    }
    return renderer.run_program(STACK, PROGRAM, {"models": stack_models})


@pytest.fixture(scope="module")
def scraped(rendered, models, local_env_factory, tmp_path_factory):
    """Model servers and a node exporter under traffic, scraped as the operator's Prometheus would."""
    folder = tmp_path_factory.mktemp("operator-scrape")
    handle = local_env_factory(folder / "state")
    env = handle.env
    versions = {names.ROLE_STABLE: models["baseline"].version, names.ROLE_CANARY: models["candidate"].version}
    node_port, kubelet_port = free_ports(2)
    exporter = spawn(
        "node_exporter",
        ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{node_port}"],
        log=folder / "node_exporter.log",
    )
    stop_traffic = threading.Event()
    threads: list[threading.Thread] = []
    try:
        groups = []
        for role, version in versions.items():
            env.start_server(role, version)
            pod = f"{MODEL}-{role}-7d9f5c6b8-x{role[:4]}"
            groups.append(
                endpoint_target(
                    _one(rendered, "Service", f"{MODEL}-{role}"),
                    _one(rendered, "Deployment", f"{MODEL}-{role}"),
                    f"127.0.0.1:{env.server_port(role)}",
                    pod,
                )
            )
        wait_until(
            lambda: _answers(f"http://127.0.0.1:{node_port}/metrics"), timeout=20, what="node exporter"
        )
        targets = folder / "endpoints.json"
        targets.write_text(json.dumps(groups), encoding="utf-8")
        nodes = folder / "nodes.json"
        nodes.write_text(
            json.dumps([node_target("k3s-server-1", "127.0.0.1", kubelet_port)]), encoding="utf-8"
        )
        monitor = _one(rendered, "ServiceMonitor", MODEL)
        kps = next(r for r in rendered.releases if r["chart"] == "kube-prometheus-stack")
        (node_job,) = kps["values"]["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]
        node_job = _on_loopback(node_job, nodes, node_port, rendered.config.monitoring.node_exporter_port)
        rule_file = folder / "mlship-rules.yml"
        rule = _one(rendered, "PrometheusRule", "mlship")
        rule_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
        scrape_configs = [service_monitor_job(monitor, 0, targets), node_job]
        _promtool_check(folder, scrape_configs, rule_file)
        rows = load.traffic_rows(seed=42, test_size=0.2)
        for role in versions:
            url = f"http://127.0.0.1:{env.server_port(role)}"
            thread = threading.Thread(
                target=load.run_load,
                args=(url, rows),
                kwargs={"rps": 5, "duration_s": 3600, "invalid_share": 0.1, "stop": stop_traffic},
                daemon=True,
            )
            thread.start()
            threads.append(thread)
        # 15 s evaluation: the operator's default is 30 s; rules see the same series, only sooner.
        with running_prometheus(
            folder / "prometheus", rule_files=[rule_file], scrape_configs=scrape_configs, interval="15s"
        ) as url:
            client = Prometheus(url)
            yield client, scrape_configs
            client.close()
    finally:
        stop_traffic.set()
        for thread in threads:
            thread.join(timeout=30)
        stop(exporter.pid)
        env.down()


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _on_loopback(job: dict, nodes: Path, port: int, rendered_port: int) -> dict:
    """The rendered node-exporter job with file_sd for role=node and the test's exporter port."""
    job = json.loads(json.dumps(job))
    assert job.pop("kubernetes_sd_configs") == [{"role": "node"}]
    job["file_sd_configs"] = [{"files": [str(nodes)]}]
    (address,) = [r for r in job["relabel_configs"] if r["target_label"] == "__address__"]
    assert address["replacement"] == f"${{1}}:{rendered_port}" and rendered_port == 9100
    address["replacement"] = f"${{1}}:{port}"
    job["scrape_interval"] = "15s"
    return job


def _promtool_check(folder: Path, scrape_configs: list[dict], rule_file: Path) -> None:
    config = folder / "check.yml"
    config.write_text(
        yaml.safe_dump({"scrape_configs": scrape_configs, "rule_files": [str(rule_file)]}), encoding="utf-8"
    )
    done = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _kubernetes_expressions(rendered) -> list[tuple[str, str]]:
    """(source, PromQL) of everything mlship queries on Kubernetes that the traffic here must feed."""
    found = []
    for expression in live.expressions():
        if expression.expect_data and not expression.needs & LOCAL_ONLY:
            assert expression.needs <= COVERS, expression
            found.append((expression.source, expression.expr))
    queries = kubernetes_queries(MODEL, rendered.config.namespace)
    for role in names.ROLES:
        for name in ("requests", "errors", "rejected", "latency", "predictions"):
            found.append((f"canary analysis {name} [{role}]", queries.render(name, role, 120)))
    for name in ("shadow_requests", "shadow_errors"):
        found.append((f"canary analysis {name}", queries.render(name, names.ROLE_CANARY, 120)))
    return found


def test_targets_carry_the_operators_labels(scraped):
    client, _ = scraped
    deadline = time.monotonic() + DEADLINE_S
    while not (series := client.query(f'up{{job="{names.JOB_MODEL}"}} == 1')) or len(series) < 2:
        assert time.monotonic() < deadline, "the model servers were never scraped"
        time.sleep(3)
    labels = {s.labels["role"]: s.labels for s in series}
    assert set(labels) == set(names.ROLES)
    for role, target in labels.items():
        assert target["service"] == f"{MODEL}-{role}" and target["namespace"] == "mlship"
        assert target["endpoint"] == "http" and target["container"] == "model" and target["model"] == MODEL
    # the server's own endpoint label wins on its series (honorLabels), so nothing is exported_*
    requests = client.query(f'{names.METRIC_BENTO_REQUESTS}{{endpoint="{names.ENDPOINT_PREDICT}"}}')
    assert requests, "bentoml requests have no endpoint=/predict: honorLabels is off"
    assert all("exported_endpoint" not in s.labels for s in requests)


def test_every_kubernetes_query_returns_data_under_traffic(scraped, rendered):
    client, _ = scraped
    expressions = _kubernetes_expressions(rendered)
    pending = dict(expressions)
    deadline = time.monotonic() + DEADLINE_S
    while pending and time.monotonic() < deadline:
        for source, expr in list(pending.items()):
            if client.query(expr):
                del pending[source]
        if pending:
            time.sleep(5)
    assert not pending, f"{len(pending)} of {len(expressions)} expressions read nothing:\n" + "\n".join(
        f"  {source}: {expr}" for source, expr in pending.items()
    )


def test_stable_is_not_empty_for_the_canary_judge(scraped, rendered):
    """What rolled every Kubernetes canary back: the analysis saw no stable traffic."""
    client, _ = scraped
    queries = kubernetes_queries(MODEL, rendered.config.namespace)
    deadline = time.monotonic() + DEADLINE_S
    while (value := client.scalar(queries.render("requests", names.ROLE_STABLE, 120), default=0.0)) < 20:
        assert time.monotonic() < deadline, f"stable requests read {value}"
        time.sleep(5)
    rejected = client.scalar(queries.render("rejected", names.ROLE_STABLE, 120), default=0.0)
    assert rejected and rejected < value
