"""Dashboards as code: structure Grafana 11 loads, PromQL that parses, names that exist."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version

import pytest
import yaml

from mlship import names
from mlship.config import Config, DriftConfig
from mlship.monitoring import dashboards as boards
from mlship.monitoring import live, rules, service_rules

DASHBOARDS = boards.dashboards()
RECORDED = {r.record for g in rules.groups() for r in g.recordings}
# Every metric a rule or dashboard may read: the service contract, BentoML's, the canary runner's,
# node exporter's and Prometheus' own.
CONTRACT = {
    getattr(names, n) for n in dir(names) if n.startswith("METRIC_") and isinstance(getattr(names, n), str)
} | {
    "bentoml_service_request_in_progress",
    service_rules.METRIC_CANARY_WEIGHT,
    service_rules.METRIC_CANARY_PHASE,
    service_rules.METRIC_CANARY_STEP,
    service_rules.METRIC_CANARY_VERDICTS,
    service_rules.METRIC_CANARY_STEP_STARTED,
    service_rules.METRIC_CANARY_ACTIVE,
    "up",
}
METRIC = re.compile(r"\b((?:mlship|bentoml|node)_[a-zA-Z0-9_]+|up)\b(?=\s*[{\[)]|\s*$|\s)")


def _targets(model):
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def test_the_sdk_is_a_grafana_11_build():
    assert version("grafana-foundation-sdk").split("!")[-1].split(".")[0] >= "11"
    for model in DASHBOARDS.values():
        assert model["schemaVersion"] >= 39  # Grafana 11


def test_five_dashboards_with_unique_uids():
    assert set(DASHBOARDS) == {
        "mlship-service.json",
        "mlship-canary.json",
        "mlship-model-data.json",
        "mlship-hosts.json",
        "mlship-logs.json",
    }
    uids = [m["uid"] for m in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert all(m["title"].startswith("mlship / ") for m in DASHBOARDS.values())


@pytest.mark.parametrize("file_name", sorted(DASHBOARDS))
def test_panels_query_a_declared_data_source_with_unique_ref_ids(file_name):
    model = DASHBOARDS[file_name]
    variables = {v["name"]: v["query"] for v in model["templating"]["list"] if v["type"] == "datasource"}
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    for panel in model["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["description"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            source = target["datasource"]
            variable = source["uid"].removeprefix("${").removesuffix("}")
            assert variables.get(variable) == source["type"], (panel["title"], source)


def test_every_prometheus_query_parses(promtool, tmp_path):
    """promtool parses each dashboard expression as it parses rules (Grafana variables substituted)."""
    exprs = live.dashboard_expressions()
    assert len(exprs) >= 40
    recordings = [{"record": f"dashboard:query:{i}", "expr": e.expr} for i, e in enumerate(exprs)]
    groups = [{"name": "dashboards", "rules": recordings}]
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_recorded_series_used_by_dashboards_are_recorded_by_the_rules():
    used = set()
    for model in DASHBOARDS.values():
        for _, target in _targets(model):
            used |= set(re.findall(r"\b((?:slo|mlship):[a-z0-9_:]+)", target["expr"]))
    assert used, "dashboards read recorded series"
    assert used <= RECORDED, f"not recorded: {used - RECORDED}"


def _metrics(expr: str) -> set[str]:
    found = set(METRIC.findall(expr))
    return {re.sub(r"_(bucket|count|sum)$", "", m) if not m.startswith("node_") else m for m in found}


def test_rules_and_dashboards_read_only_contract_metrics():
    exprs = [e.expr for e in live.expressions()]
    used = set().union(*(_metrics(e) for e in exprs))
    unknown = {m for m in used if not m.startswith("node_") and m not in CONTRACT}
    assert not unknown, f"metrics outside mlship/names.py and the runner's: {unknown}"
    assert {names.METRIC_FEATURE_BIN, names.METRIC_PREDICTION, names.METRIC_REJECTED} <= used


def test_logs_dashboard_queries_loki_for_errors_by_version():
    model = DASHBOARDS["mlship-logs.json"]
    targets = [t for _, t in _targets(model)]
    assert all(t["datasource"]["type"] == "loki" for t in targets)
    errors = next(t for p, t in _targets(model) if p["title"] == "Errors by model version")
    assert "| json" in errors["expr"] and 'level="error"' in errors["expr"]
    assert errors["expr"].startswith("sum by (model_version, role)")


def test_thresholds_follow_the_configuration():
    strict = boards.dashboards(Config(drift=DriftConfig(psi_threshold=0.15)))["mlship-model-data.json"]
    panel = next(p for p in strict["panels"] if p["title"].startswith("PSI per feature"))
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"value": 0.15, "color": "red"}


def test_live_check_covers_every_rule_and_dashboard_query_with_what_it_needs():
    exprs = live.expressions()
    recordings = [e for e in exprs if e.source.startswith("rule ")]
    assert len(recordings) == sum(len(g.recordings) for g in rules.groups())
    assert all(e.expect_data for e in recordings)
    conditions = [e for e in exprs if e.source.startswith("alert ") and " signal " not in e.source]
    assert {e.source.removeprefix("alert ") for e in conditions} == {a.name for a in rules.alerts()}
    assert not any(e.expect_data for e in conditions)  # rightly empty while nothing is wrong
    needs = {e.source: e.needs for e in exprs}
    assert needs["dashboard mlship-canary.json/Mirrored calls [A]"] == {"shadow"}
    assert needs["dashboard mlship-model-data.json/Rejected inputs by reason and field [A]"] == {"rejections"}
    assert needs["alert CanaryRunnerStalled signal mlship_canary_rollout_active"] == {"rollout"}
    assert (
        "canary"
        in needs['alert CanaryErrorsAboveStable signal mlship:request_errors:ratio_rate10m{role="canary"}']
    )
    assert needs["rule mlship-model-data/mlship:feature_psi:1h"] == frozenset()
