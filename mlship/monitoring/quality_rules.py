"""Online quality rules: outcomes joined to served predictions, against the offline estimate; non-finite
predictions at serving time.

Any server may receive an outcome (mlship/feedback): the outcome metrics carry the predicting server's
version and role as ``model_version`` and ``prediction_role``. The recordings sum over every server and
name that role ``role``, so they line up with every other per-role series.
"""

from __future__ import annotations

from mlship import names
from mlship.monitoring import promql as q
from mlship.monitoring.limits import LIMITS, Limits
from mlship.monitoring.rule_types import Alert, Group, Recording


class Names:
    """Recording-rule names, shared with the dashboards."""

    def __init__(self, limits: Limits = LIMITS) -> None:
        w = limits.quality_window
        self.outcomes = f"mlship:online_outcomes:increase{w}"
        self.rmse = f"mlship:online_rmse:{w}"
        self.mae = f"mlship:online_mae:{w}"
        self.offline_rmse = "mlship:model_offline_rmse"
        self.non_finite = f"mlship:non_finite_predictions:increase{limits.non_finite_window}"


NAMES = Names()


def _by_prediction_role(fn: str, metric: str, window: str) -> str:
    """``fn(metric[window])`` summed per scope, model version and the role that made the prediction."""
    relabelled = (
        f'label_replace({fn}({q.sel(metric, q.MODEL_JOB)}[{window}]), "{names.LABEL_ROLE}", "$1", '
        f'"{names.LABEL_PREDICTION_ROLE}", "(.+)")'
    )
    return f"sum {q.by(q.BY_VERSION)} ({relabelled})"


def online_quality_rules(n: Names = NAMES, limits: Limits = LIMITS) -> list[Recording | Alert]:
    w = limits.quality_window
    count = _by_prediction_role("rate", names.METRIC_OUTCOMES, w)
    squared = _by_prediction_role("rate", names.METRIC_OUTCOME_SQUARED_ERROR, w)
    absolute = _by_prediction_role("rate", f"{names.METRIC_OUTCOME_ABS_ERROR}_sum", w)
    match = q.on((*q.SCOPE, names.LABEL_MODEL_VERSION))
    ratio = q.number(limits.online_rmse_ratio)
    return [
        Recording(n.outcomes, _by_prediction_role("increase", names.METRIC_OUTCOMES, w)),
        Recording(n.rmse, f"sqrt(\n  {squared}\n/\n  ({count} > 0)\n)"),
        Recording(n.mae, f"{absolute}\n/\n({count} > 0)"),
        Recording(
            n.offline_rmse,
            f"max by ({', '.join((*q.SCOPE, names.LABEL_MODEL_VERSION))}) "
            f"({q.sel(names.METRIC_MODEL_OFFLINE_RMSE, q.MODEL_JOB)})",
        ),
        Alert(
            name="OnlineQualityRegression",
            expr=(
                f"{n.rmse} > {match} group_left() ({ratio} * {n.offline_rmse})\n"
                f"and {n.outcomes} >= {q.number(limits.min_outcomes)}"
            ),
            for_="15m",
            severity="ticket",
            summary="Model {{ $labels.model_version }} ({{ $labels.role }}) is worse online than offline",
            description=(
                "Online RMSE of model {{ $labels.model_version }} ({{ $labels.role }}) from outcomes "
                "joined to "
                f'its predictions over {w} is {{{{ $value | printf "%.1f" }}}}, more than '
                f"{ratio} times the held-out RMSE stored with the model (at least "
                f"{q.number(limits.min_outcomes)} outcomes)."
            ),
            signals=(n.rmse, n.offline_rmse),
        ),
    ]


def non_finite_rules(n: Names = NAMES, limits: Limits = LIMITS) -> list[Recording | Alert]:
    window = limits.non_finite_window
    selector = q.sel(names.METRIC_NON_FINITE, q.MODEL_JOB)
    return [
        Recording(n.non_finite, f"sum {q.by(q.BY_VERSION)} (increase({selector}[{window}]))"),
        Alert(
            name="NonFinitePredictions",
            expr=f"{n.non_finite} > 0",
            severity="page",
            summary="Model {{ $labels.model_version }} ({{ $labels.role }}) served non-finite predictions",
            description=(
                '{{ $value | printf "%.0f" }} requests to model {{ $labels.model_version }} '
                f"({{{{ $labels.role }}}}) were answered 500: the model computed NaN or infinity "
                f"over the last {window}."
            ),
            signals=(n.non_finite,),
        ),
    ]


def quality_group() -> Group:
    return Group(
        name="mlship-model-quality",
        file="model-quality",
        rules=(*online_quality_rules(), *non_finite_rules()),
    )
