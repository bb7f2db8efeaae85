"""Service overview: SLOs, then rate, errors, latency and saturation by model version."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from mlship import names
from mlship.config import Config
from mlship.monitoring import promql as q
from mlship.monitoring import slo
from mlship.monitoring.dashboards.panels import RATE, Query, base, graph, single, with_version

BY_VERSION = "sum by (namespace, role, model_version)"
VERSION_LEGEND = "{{role}} {{model_version}}"


def requests_by_version(*matchers: str) -> str:
    """Prediction requests per second by role and model version."""
    selector = q.sel(names.METRIC_BENTO_REQUESTS, q.MODEL_JOB, q.PREDICT_ENDPOINTS, *matchers)
    return f"{BY_VERSION} (\n{with_version(f'rate({selector}[{RATE}])')}\n)"


def share_by_version(matcher: str) -> str:
    """Share of prediction requests matching ``matcher`` (0 while there are none)."""
    part = q.zero_filled(requests_by_version(matcher), requests_by_version())
    return f"{part}\n/\n({requests_by_version()} > 0)"


def latency_quantile(quantile: float) -> str:
    selector = q.sel(
        f"{names.METRIC_BENTO_DURATION}_bucket", q.MODEL_JOB, q.PREDICT_ENDPOINTS, q.SUCCESS_CODES
    )
    per_version = with_version(f"rate({selector}[{RATE}])")
    summed = f"sum by (namespace, role, model_version, le) (\n{per_version}\n)"
    return f"histogram_quantile(\n  {q.number(quantile)},\n{summed}\n)"


def build(config: Config) -> dashboard.Dashboard:
    slos = slo.model_api_slos(config.slo)
    board = base(
        "mlship / Service overview",
        "mlship-service",
        "Model API: SLOs, then rate, errors, latency and saturation by model version (stable and canary).",
        ["service"],
    ).with_row(dashboard.Row("Service level objectives"))
    for objective in slos:
        board = board.with_panel(
            single(
                f"{objective.name}: error ratio (1h)",
                f"SLO: {objective.description}. Error budget: {q.number(objective.budget * 100)}%.",
                [Query(objective.series("1h"), instant=True)],
                unit="percentunit",
                limit=objective.budget,
            )
        )
    burn = f"{slo.ERROR_RATIO}1h\n/ on (slo) group_left ()\n(1 - {slo.OBJECTIVE})"
    board = board.with_panel(
        graph(
            "Error-budget burn rate (1h)",
            "1 = spending exactly the 30-day budget; the page alert needs more than 14.4 over 1h and 5m.",
            [Query(burn, "{{slo}}")],
            limit=14.4,
            height=5,
        )
    )
    in_progress = q.sel("bentoml_service_request_in_progress", q.MODEL_JOB, q.PREDICT_ENDPOINTS)
    return (
        board.with_row(dashboard.Row("Traffic by model version"))
        .with_panel(
            graph(
                "Requests per second",
                "Prediction requests answered (all status codes), by role and model version.",
                [Query(requests_by_version(), VERSION_LEGEND)],
                unit="reqps",
            )
        )
        .with_panel(
            graph(
                "Predictions per second",
                "Rows scored (a batch request scores many), by role and model version.",
                [
                    Query(
                        f"{BY_VERSION} (rate({q.sel(names.METRIC_PREDICTIONS, q.MODEL_JOB)}[{RATE}]))",
                        VERSION_LEGEND,
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Server errors (5xx share)",
                "Share of prediction requests answered 5xx; dashed: the availability SLO's budget.",
                [Query(share_by_version(q.SERVER_ERROR_CODES), VERSION_LEGEND)],
                unit="percentunit",
                limit=1 - config.slo.availability,
            )
        )
        .with_panel(
            graph(
                "Rejected inputs (4xx share)",
                "Share of prediction requests rejected as invalid input (see the model and data dashboard).",
                [Query(share_by_version(q.REJECTED_CODES), VERSION_LEGEND)],
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "Latency quantiles",
                "p50, p90 and p99 of successful prediction requests; dashed: the latency SLO's threshold.",
                [
                    Query(latency_quantile(quantile), f"p{q.number(quantile * 100)} {VERSION_LEGEND}")
                    for quantile in (0.5, 0.9, 0.99)
                ],
                unit="s",
                limit=config.slo.latency_threshold_seconds,
            )
        )
        .with_panel(
            graph(
                "Saturation: requests in flight",
                "Prediction requests being processed at once, by model version.",
                [Query(f"{BY_VERSION} (\n{with_version(in_progress)}\n)", VERSION_LEGEND)],
            )
        )
    )
