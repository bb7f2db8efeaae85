"""The canary analysis on Kubernetes counts what the gateway saw, per role (issue 11 defect 7).

The model servers only count the answers they gave: a refused connection, a timeout or a crashed pod
never reaches their counters. Envoy Gateway charges those to the backend's cluster, one cluster per
backend of a rule (``httproute/<ns>/<route>/rule/<i>/backend/<j>``, made so by the route's per-backend
filter). The queries are evaluated by Prometheus' own engine (``promtool test rules``, the PromQL of
Debian's Prometheus) over series shaped as the Operator scrapes them: the Envoy proxies through the
PodMonitor (labels ``envoy_cluster_name``, ``envoy_response_code_class``), the model servers through
the ServiceMonitor (``namespace``, ``model``, ``role``, BentoML's ``endpoint``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlship import names
from mlship.canary.analysis import kubernetes_queries
from mlship.k8s import naming

NS, MODEL = "mlship", "diabetes-regressor"
WINDOW = 600


def _server(role: str, code: str, per_minute: int, model: str = MODEL) -> dict:
    labels = (
        f'{names.METRIC_BENTO_REQUESTS}{{namespace="{NS}",model="{model}",role="{role}",'
        f'endpoint="{names.ENDPOINT_PREDICT}",http_response_code="{code}",job="mlship-model"}}'
    )
    return {"series": labels, "values": f"0+{per_minute}x20"}


def _gateway(role: str, code_class: str, per_minute: int, rule: int = 0, model: str = MODEL) -> dict:
    cluster = f"httproute/{NS}/{model}/rule/{rule}/backend/{naming.BACKEND_INDEX[role]}"
    labels = (
        f'envoy_cluster_upstream_rq_xx{{envoy_cluster_name="{cluster}",'
        f'envoy_response_code_class="{code_class}",namespace="envoy-gateway-system"}}'
    )
    return {"series": labels, "values": f"0+{per_minute}x20"}


def _evaluate(tmp_path: Path, series: list[dict], checks: dict[str, float]) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: `make setup` installs Debian's prometheus package")
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "15m", "exp_samples": [{"labels": "{}", "value": value}]}
                    for expr, value in checks.items()
                ],
            }
        ],
    }
    path = tmp_path / "queries.test.yml"
    path.write_text(yaml.safe_dump(test), encoding="utf-8")
    return subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, cwd=tmp_path
    )


def test_gateway_failures_count_as_canary_errors(tmp_path):
    """The canary refuses connections on 30 requests a minute: its server never sees them; Envoy does."""
    q = kubernetes_queries(MODEL, NS)
    series = [
        _server("stable", "200", 300),
        _server("canary", "200", 30),
        _gateway("stable", "2", 300),
        _gateway("canary", "2", 30),
        _gateway("canary", "5", 30),  # 503 UF / 504 UT: answered by Envoy itself
        _server("stable", "200", 100, model="other-model"),  # another model's rollout, same namespace
    ]
    # increase() over 10 minutes of a counter growing N a minute: 10 N (extrapolated by Prometheus)
    checks = {
        q.render("errors", "canary", WINDOW): 300,
        q.render("requests", "canary", WINDOW): 600,
        q.render("errors", "stable", WINDOW): 0,
        q.render("requests", "stable", WINDOW): 3000,
    }
    done = _evaluate(tmp_path, series, checks)
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_gateway_metrics_the_servers_counts_remain(tmp_path):
    """Another Gateway implementation, or no PodMonitor: the analysis still has the servers' counts."""
    q = kubernetes_queries(MODEL, NS)
    series = [_server("stable", "200", 300), _server("canary", "200", 27), _server("canary", "500", 3)]
    checks = {
        q.render("errors", "canary", WINDOW): 30,
        q.render("requests", "canary", WINDOW): 300,
        q.render("errors", "stable", WINDOW): 0,
        q.render("requests", "stable", WINDOW): 3000,
    }
    done = _evaluate(tmp_path, series, checks)
    assert done.returncode == 0, done.stdout + done.stderr


def test_errors_both_sides_saw_are_counted_once(tmp_path):
    """A 500 of the model server passes through Envoy: both count it, the analysis once."""
    q = kubernetes_queries(MODEL, NS)
    series = [
        _server("canary", "200", 27),
        _server("canary", "500", 3),
        _gateway("canary", "2", 27),
        _gateway("canary", "5", 3),
        _gateway("canary", "5", 2, rule=1),  # /predict_batch: not what endpoint="/predict" counts
    ]
    checks = {q.render("errors", "canary", WINDOW): 30, q.render("requests", "canary", WINDOW): 300}
    done = _evaluate(tmp_path, series, checks)
    assert done.returncode == 0, done.stdout + done.stderr
