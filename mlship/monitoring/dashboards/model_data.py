"""Model and data: predictions, drift per feature, rejected inputs, staleness, training/serving skew."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from mlship import names
from mlship.config import Config
from mlship.monitoring import promql as q
from mlship.monitoring.dashboards.panels import RATE, Query, bars, base, graph, grid, histogram_heatmap
from mlship.monitoring.limits import LIMITS
from mlship.monitoring.model_rules import NAMES as DATA
from mlship.monitoring.quality_rules import NAMES as QUALITY

VERSION_LEGEND = "{{role}} {{model_version}}"
FEATURE_LEGEND = "{{feature}} ({{role}} {{model_version}})"


def build(config: Config) -> dashboard.Dashboard:
    w = LIMITS.drift_window
    predictions = q.sel(f"{names.METRIC_PREDICTION}_bucket", q.MODEL_JOB)
    rejected = q.sel(names.METRIC_REJECTED, q.MODEL_JOB)
    info = q.sel(names.METRIC_MODEL_INFO, q.MODEL_JOB)
    return (
        base(
            "mlship / Model and data",
            "mlship-model-data",
            "What the model sees and predicts against its training data: drift, rejections, staleness, skew.",
            ["model", "data"],
        )
        .with_row(dashboard.Row("Predictions"))
        .with_panel(
            histogram_heatmap(
                "Prediction histogram",
                "Served predictions per bucket over time; buckets are the training target's quantiles.",
                f"sum by (le) (rate({predictions}[{RATE}]))",
            )
        )
        .with_panel(
            graph(
                f"Prediction shift against training (KS, {w})",
                "Largest gap between the cumulative distributions of served and training predictions.",
                [Query(DATA.prediction_ks, VERSION_LEGEND)],
                limit=LIMITS.prediction_ks_threshold,
                minimum=0,
            )
        )
        .with_panel(
            bars(
                f"Served vs training: cumulative share at each bucket ({w})",
                "Served predictions at or below each bucket bound, next to the model's training predictions.",
                [
                    Query(f"max by (le) ({DATA.prediction_cdf})", "served <= {{le}}", instant=True),
                    Query(f"max by (le) ({DATA.prediction_reference})", "training <= {{le}}", instant=True),
                ],
                unit="percentunit",
                width=24,
                height=10,
            )
        )
        .with_row(dashboard.Row("Online quality (outcomes joined to predictions)"))
        .with_panel(
            graph(
                f"Online RMSE per version and role ({LIMITS.quality_window})",
                "RMSE of served predictions against the outcomes sent to /feedback, next to the held-out "
                "RMSE stored with each model (dashed: offline). OnlineQualityRegression fires above "
                f"{q.number(LIMITS.online_rmse_ratio)} x offline with at least "
                f"{q.number(LIMITS.min_outcomes)} outcomes.",
                [
                    Query(QUALITY.rmse, "online {{role}} {{model_version}}"),
                    Query(QUALITY.offline_rmse, "offline {{model_version}}"),
                ],
                minimum=0,
            )
        )
        .with_panel(
            graph(
                "Labelled predictions and refused outcomes",
                "Outcomes joined to a prediction per second (by the predicting version and role), and "
                "outcome submissions refused per second by reason.",
                [
                    Query(
                        f"sum by (namespace, model_version, prediction_role) "
                        f"(rate({q.sel(names.METRIC_OUTCOMES, q.MODEL_JOB)}[{RATE}]))",
                        "joined {{prediction_role}} {{model_version}}",
                    ),
                    Query(
                        f"sum by (namespace, reason) "
                        f"(rate({q.sel(names.METRIC_FEEDBACK_REJECTED, q.MODEL_JOB)}[{RATE}]))",
                        "refused: {{reason}}",
                    ),
                    Query(
                        f"sum by (namespace, role) "
                        f"(rate({q.sel(names.METRIC_NON_FINITE, q.MODEL_JOB)}[{RATE}]))",
                        "non-finite predictions {{role}}",
                    ),
                ],
            )
        )
        .with_row(dashboard.Row("Feature drift against training"))
        .with_panel(
            graph(
                f"PSI per feature ({w})",
                "Population stability index of served values against the training bins; "
                f"dashed: drift.psi_threshold ({q.number(config.drift.psi_threshold)}).",
                [Query(DATA.psi, FEATURE_LEGEND)],
                limit=config.drift.psi_threshold,
                minimum=0,
            )
        )
        .with_panel(
            bars(
                "PSI now",
                "Current PSI per feature; red above drift.psi_threshold.",
                [Query(f"max by (feature) ({DATA.psi})", "{{feature}}", instant=True)],
                limit=config.drift.psi_threshold,
            )
        )
        .with_panel(
            graph(
                f"Chi-square statistic / critical value ({w})",
                f"Above 1: served and training bins differ at p < {q.number(config.drift.p_value)}.",
                [Query(f"{DATA.chi2}\n/\n{DATA.chi2_critical}", FEATURE_LEGEND)],
                limit=1.0,
                minimum=0,
            )
        )
        .with_panel(
            graph(
                f"Observations per feature ({w})",
                "Served values counted per feature in the window; chi-square needs "
                f"{q.number(LIMITS.min_expected_per_bin)} expected per bin.",
                [Query(DATA.observations, FEATURE_LEGEND)],
            )
        )
        .with_row(dashboard.Row("Inputs, staleness, skew"))
        .with_panel(
            graph(
                "Rejected inputs by reason and field",
                "Validation errors per second by pydantic error type and field (values are never logged).",
                [
                    Query(
                        f"sum by (namespace, role, model_version, reason, field) (rate({rejected}[{RATE}]))",
                        "{{field}}: {{reason}} ({{role}})",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                f"Rejected request share ({LIMITS.rejection_window})",
                "Share of prediction requests answered 4xx for invalid input, per role.",
                [Query(DATA.rejections, "{{role}}")],
                unit="percentunit",
                limit=LIMITS.rejection_ratio,
            )
        )
        .with_panel(
            bars(
                "Model age",
                f"Days since the serving model was trained; red beyond drift.max_model_age_days "
                f"({q.number(config.drift.max_model_age_days)}).",
                [Query(f"{DATA.model_age} / 86400", VERSION_LEGEND, instant=True)],
                unit="d",
                limit=config.drift.max_model_age_days,
            )
        )
        .with_panel(
            graph(
                f"Training/serving skew ({LIMITS.skew_window})",
                "Share of re-checked served rows whose online features differ from the offline pipeline's.",
                [Query(DATA.skew, VERSION_LEGEND)],
                unit="percentunit",
                limit=LIMITS.skew_mismatch_ratio,
            )
        )
        .with_panel(
            grid(
                "Models serving",
                "Every model version a server currently reports, with its feature code version.",
                [
                    Query(
                        f"max by (namespace, role, model_version, model_name, feature_version) ({info})",
                        instant=True,
                    )
                ],
                width=24,
            )
        )
    )
