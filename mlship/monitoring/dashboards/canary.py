"""Canary rollout: weights, verdicts, and canary against stable on errors, latency and predictions.

Weights, phase and verdicts come from the canary runner's own metrics (``mlship_canary_*``, see
``mlship/canary/publish.py``); everything else from the model servers, so the comparison also works
where the runner is not scraped.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from mlship import names
from mlship.config import Config
from mlship.monitoring import promql as q
from mlship.monitoring.dashboards.panels import RATE, Query, base, graph, single
from mlship.monitoring.model_rules import NAMES as DATA
from mlship.monitoring.service_rules import (
    METRIC_CANARY_PHASE,
    METRIC_CANARY_STEP,
    METRIC_CANARY_STEP_STARTED,
    METRIC_CANARY_VERDICTS,
    METRIC_CANARY_WEIGHT,
)
from mlship.monitoring.service_rules import NAMES as SERVICE


def build(config: Config) -> dashboard.Dashboard:
    requests = q.sel(names.METRIC_BENTO_REQUESTS, q.MODEL_JOB, q.PREDICT_ENDPOINTS)
    canary_requests = q.sel(
        names.METRIC_BENTO_REQUESTS,
        q.MODEL_JOB,
        q.PREDICT_ENDPOINTS,
        f'{names.LABEL_ROLE}="{names.ROLE_CANARY}"',
    )
    share = (
        f"sum by (namespace) (rate({canary_requests}[{RATE}]))\n"
        f"/\n(sum by (namespace) (rate({requests}[{RATE}])) > 0)"
    )
    quantile = q.number(config.canary.latency_quantile)
    verdicts = METRIC_CANARY_VERDICTS
    shadow = q.sel(names.METRIC_SHADOW_REQUESTS, q.MODEL_JOB)
    diff = q.sel(f"{names.METRIC_SHADOW_ABS_DIFF}_bucket", q.MODEL_JOB)
    diff_rate = f"sum by (namespace, candidate_version, le) (rate({diff}[{RATE}]))"
    return (
        base(
            "mlship / Canary rollout",
            "mlship-canary",
            "Rollout progress (weights, verdicts) and the canary against stable on what it is judged on.",
            ["canary"],
        )
        .with_row(dashboard.Row("Progress"))
        .with_panel(
            graph(
                "Canary weight",
                "Configured canary traffic percentage (runner) and the share the canary actually served.",
                [
                    Query(f"max by (namespace) ({METRIC_CANARY_WEIGHT}) / 100", "configured"),
                    Query(share, "observed"),
                ],
                unit="percentunit",
                minimum=0,
            )
        )
        .with_panel(
            graph(
                "Verdicts",
                "Decisions of the canary judge: wait (not enough evidence yet), advance, rollback.",
                [
                    Query(
                        f"sum by (namespace, decision) (increase({verdicts}[{RATE}]))",
                        "{{decision}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Routing reconciliations",
                "Differences between what the rollout says and the routing in effect, repaired or "
                "failed (the rollout pauses), and whether the routing is the rollout's now (1).",
                [
                    Query(
                        f"sum by (namespace, result) "
                        f"(increase({names.METRIC_CANARY_ROUTING_DIFFERENCES}[{RATE}]))",
                        "{{result}}",
                    ),
                    Query(f"min by (namespace) ({names.METRIC_CANARY_ROUTING_IN_SYNC})", "in sync"),
                ],
                minimum=0,
            )
        )
        .with_panel(
            graph(
                "Phase",
                "1 for the rollout's current phase: shadow, progressing, promoted, rolled_back, expired.",
                [Query(f"max by (namespace, phase) ({METRIC_CANARY_PHASE}) == 1", "{{phase}}")],
                minimum=0,
            )
        )
        .with_panel(
            single(
                "Current step",
                f"Index into canary.steps {config.canary.steps}; -1 is the shadow phase.",
                [Query(f"max by (namespace) ({METRIC_CANARY_STEP})", instant=True)],
            )
        )
        .with_panel(
            single(
                "Time in step",
                f"A step that cannot collect enough samples in {q.number(config.canary.max_step_seconds)} s "
                "(canary.max_step_seconds) is rolled back.",
                [
                    Query(
                        f"time() - max by (namespace) ({METRIC_CANARY_STEP_STARTED})",
                        instant=True,
                    )
                ],
                unit="s",
                limit=config.canary.max_step_seconds,
            )
        )
        .with_row(dashboard.Row("Canary against stable"))
        .with_panel(
            graph(
                "Server error ratio",
                "5xx share per role; the alert fires when canary exceeds stable by canary.error_rate_margin.",
                [Query(SERVICE.errors, "{{role}}")],
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                f"Latency p{q.number(config.canary.latency_quantile * 100)}",
                "Per role; the alert fires when canary exceeds canary.latency_ratio_limit times stable.",
                [Query(f'{SERVICE.latency}{{quantile="{quantile}"}}', "{{role}}")],
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Prediction shift against training (KS)",
                "Kolmogorov-Smirnov distance between served and training predictions, per role and version.",
                [Query(DATA.prediction_ks, "{{role}} {{model_version}}")],
                unit="short",
                minimum=0,
            )
        )
        .with_panel(
            graph(
                "Requests per role",
                "Prediction requests per second served by each role.",
                [Query(SERVICE.requests, "{{role}}")],
                unit="reqps",
            )
        )
        .with_row(dashboard.Row("Shadow phase"))
        .with_panel(
            graph(
                "Mirrored calls",
                "Calls the stable server mirrors to the candidate, by result.",
                [
                    Query(
                        f"sum by (namespace, candidate_version, result) (rate({shadow}[{RATE}]))",
                        "{{result}}",
                    )
                ],
                unit="reqps",
            )
        )
        .with_panel(
            graph(
                "|candidate - stable| on the same request",
                "Median and p90 of the absolute prediction difference on mirrored requests.",
                [
                    Query(
                        f"histogram_quantile(\n  {p},\n  {diff_rate}\n)",
                        f"p{q.number(p * 100)}",
                    )
                    for p in (0.5, 0.9)
                ],
            )
        )
    )
