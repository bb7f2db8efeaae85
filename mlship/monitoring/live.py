"""Live check: every PromQL expression of the rules and dashboards, run against a real Prometheus.

Recording rules, alert signals and dashboard queries must return data while traffic flows (an
expression that returns nothing under traffic is a bug: a wrong metric or label name, a join that
never matches); alert conditions must parse and are rightly empty while nothing is wrong.

Some expressions can only have data in some situations: a canary serving, a rollout published by
the runner, the shadow phase mirroring requests, invalid requests being rejected. Each expression
is tagged with what it needs, so the caller can say which situations its traffic covered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlship import names
from mlship.config import Config
from mlship.errors import MlshipError
from mlship.monitoring import dashboards, rules
from mlship.monitoring.service_rules import METRIC_CANARY_ACTIVE
from mlship.promclient import Prometheus

# Grafana's built-in variables, replaced as Grafana would for a short dashboard range.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}

NEEDS_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rollout", re.compile(r"mlship_canary_")),
    ("shadow", re.compile(r"mlship_shadow_")),
    ("canary", re.compile(rf'{names.LABEL_ROLE}="{names.ROLE_CANARY}"')),
    ("rejections", re.compile(re.escape(names.METRIC_REJECTED))),
    # outcomes sent to /feedback (mlship load's outcome share), some refused (its duplicates)
    ("outcomes", re.compile(r"mlship_outcome|mlship:online_")),
    ("rejected-outcomes", re.compile(re.escape(names.METRIC_FEEDBACK_REJECTED))),
    # the local router (HAProxy's exporter); on Kubernetes the Gateway routes and nothing scrapes HAProxy
    ("router", re.compile(rf'job="{names.JOB_ROUTER}"|\bhaproxy_')),
)


@dataclass(frozen=True)
class Expression:
    source: str  # "rule <group>/<record>", "alert <name> [signal <expr>]", "dashboard <file>/<panel> [ref]"
    expr: str
    expect_data: bool
    needs: frozenset[str]


@dataclass(frozen=True)
class Result:
    expression: Expression
    ok: bool
    series: int
    error: str = ""


def needs_of(expr: str) -> frozenset[str]:
    return frozenset(name for name, pattern in NEEDS_RULES if pattern.search(expr))


def rule_expressions(config: Config | None = None) -> list[Expression]:
    found: list[Expression] = []
    for group in rules.groups(config):
        for recording in group.recordings:
            source = f"rule {group.name}/{recording.record}"
            found.append(Expression(source, recording.expr, True, needs_of(recording.expr)))
        for alert in group.alerts:
            found.append(Expression(f"alert {alert.name}", alert.expr, False, needs_of(alert.expr)))
            for signal in alert.signals:
                needs = needs_of(signal)
                if signal == METRIC_CANARY_ACTIVE:
                    needs |= {"rollout"}
                found.append(Expression(f"alert {alert.name} signal {signal}", signal, True, needs))
    return found


def _panels(model: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def dashboard_expressions(config: Config | None = None) -> list[Expression]:
    found: list[Expression] = []
    for file_name, model in dashboards.dashboards(config).items():
        for panel in _panels(model):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") != "prometheus":
                    continue
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                source = f"dashboard {file_name}/{panel['title']} [{target['refId']}]"
                found.append(Expression(source, expr, True, needs_of(expr)))
    return found


def expressions(config: Config | None = None) -> list[Expression]:
    return rule_expressions(config) + dashboard_expressions(config)


def check(prometheus: Prometheus, expression: Expression) -> Result:
    try:
        samples = prometheus.query(expression.expr)
    except MlshipError as exc:  # unreachable or a rejected query: reported per expression
        return Result(expression, False, 0, str(exc))
    if expression.expect_data and not samples:
        return Result(expression, False, 0, "no data")
    return Result(expression, True, len(samples))
