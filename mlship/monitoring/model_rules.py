"""Model and data rules: drift per feature, prediction shift, rejections, staleness, skew.

Drift is measured against the training reference each model server exports with its own version:

* features: served values are counted in the training bins (deciles, or categories), so the served
  share per bin is compared with the training share by the population stability index (PSI) and a
  chi-square goodness-of-fit test whose critical value (df = bins - 1, level ``drift.p_value``) is
  computed here with scipy and embedded in the rule;
* predictions: served predictions are a histogram on the training-target quantiles and the model
  exports the cumulative share of its own training predictions per bucket, so the Kolmogorov-Smirnov
  distance is the largest gap between the two cumulative curves.

A feature drifts when PSI is above ``drift.psi_threshold`` AND the chi-square test rejects AND every
bin expects enough observations: PSI alone is noisy on small samples, significance alone is reached
by negligible differences at high traffic.
"""

from __future__ import annotations

from scipy import stats

from mlship import names
from mlship.config import Config
from mlship.monitoring import promql as q
from mlship.monitoring.limits import LIMITS, Limits
from mlship.monitoring.rule_types import Alert, Group, Recording

# Critical values are tabulated for up to this many bins (deciles and small category sets);
# beyond, the Wilson-Hilferty approximation (error well under 1% for df > 20) takes over.
CHI2_TABLE_MAX_BINS = 21


class Names:
    """Recording-rule names, shared with the dashboards and `mlship drift`."""

    def __init__(self, limits: Limits = LIMITS) -> None:
        w = limits.drift_window
        self.bin_rate = f"mlship:feature_bin:rate{w}"
        self.observations = f"mlship:feature_observations:increase{w}"
        self.reference = "mlship:feature_reference:share"
        self.bins = "mlship:feature_reference:bins"
        self.share = f"mlship:feature_bin:share{w}"
        self.psi = f"mlship:feature_psi:{w}"
        self.chi2 = f"mlship:feature_chi2:{w}"
        self.chi2_critical = "mlship:feature_chi2:critical"
        self.expected_min = f"mlship:feature_expected_min:{w}"
        self.prediction_cdf = f"mlship:prediction_cdf:{w}"
        self.prediction_reference = "mlship:prediction_reference:cdf"
        self.prediction_ks = f"mlship:prediction_ks:{w}"
        self.prediction_observations = f"mlship:prediction_observations:increase{w}"
        self.rejections = f"mlship:input_rejections:ratio_rate{limits.rejection_window}"
        self.model_age = "mlship:model_age:seconds"
        self.skew = f"mlship:skew_mismatches:ratio_rate{limits.skew_window}"


NAMES = Names()


def chi2_critical_expr(bins: str, p_value: float) -> str:
    """Critical chi-square value for each feature's df = bins - 1 at level ``p_value``."""
    terms = [
        f"(0 * ({bins} == {k}) + {q.number(float(stats.chi2.isf(p_value, k - 1)))})"
        for k in range(2, CHI2_TABLE_MAX_BINS + 1)
    ]
    df = f"(({bins} > {CHI2_TABLE_MAX_BINS}) - 1)"
    z = q.number(float(stats.norm.isf(p_value)))
    terms.append(f"({df} * (1 - 2 / (9 * {df}) + {z} * sqrt(2 / (9 * {df}))) ^ 3)")
    return "\nor ".join(terms)


def feature_drift_rules(config: Config, n: Names = NAMES, limits: Limits = LIMITS) -> list[Recording | Alert]:
    w = limits.drift_window
    bins_selector = q.sel(names.METRIC_FEATURE_BIN, q.MODEL_JOB)
    eps = q.number(limits.psi_epsilon)
    served = f"clamp_min({n.share}, {eps})"
    reference = f"clamp_min({n.reference}, {eps})"
    psi_limit = q.number(config.drift.psi_threshold)
    return [
        Recording(n.bin_rate, f"sum {q.by(q.BY_BIN)} (rate({bins_selector}[{w}]))"),
        Recording(n.observations, f"sum {q.by(q.BY_FEATURE)} (increase({bins_selector}[{w}]))"),
        Recording(
            n.reference,
            f"max {q.by(q.BY_BIN)} ({q.sel(names.METRIC_FEATURE_REFERENCE, q.MODEL_JOB)})",
        ),
        Recording(n.bins, f"count {q.by(q.BY_FEATURE)} ({n.reference})"),
        # Served share per bin; bins never served in the window count as 0 (not as missing).
        Recording(
            n.share,
            f"(\n  {n.bin_rate}\n  / ignoring ({names.LABEL_BIN}) group_left ()\n"
            f"  (sum {q.by(q.BY_FEATURE)} ({n.bin_rate}) > 0)\n)\nor\n"
            f"(\n  0 * {n.reference}\n  and {q.on(q.BY_FEATURE)}\n  ({n.observations} > 0)\n)",
        ),
        Recording(
            n.psi,
            f"sum {q.by(q.BY_FEATURE)} (\n  ({served} - {reference})\n  * ln({served} / {reference})\n)",
        ),
        Recording(
            n.chi2,
            f"sum {q.by(q.BY_FEATURE)} (\n  ({n.share} - {n.reference}) ^ 2 / {reference}\n)\n"
            f"* {n.observations}",
        ),
        Recording(n.chi2_critical, chi2_critical_expr(n.bins, config.drift.p_value)),
        Recording(n.expected_min, f"{n.observations}\n* min {q.by(q.BY_FEATURE)} ({n.reference})"),
        Alert(
            name="FeatureDrift",
            expr=(
                f"{n.psi} > {psi_limit}\nand\n{n.chi2} > {n.chi2_critical}\n"
                f"and\n{n.expected_min} >= {q.number(limits.min_expected_per_bin)}"
            ),
            for_="15m",
            severity="ticket",
            summary="Feature {{ $labels.feature }} drifted from its training distribution",
            description=(
                f"Over the last {w}, served values of {{{{ $labels.feature }}}} for model "
                '{{ $labels.model_version }} ({{ $labels.role }}) have PSI {{ $value | printf "%.3f" }} '
                f"against the training reference (limit {psi_limit}) and a chi-square test rejects "
                f"equality at p < {q.number(config.drift.p_value)}."
            ),
            signals=(n.psi, n.chi2, n.chi2_critical, n.expected_min),
        ),
    ]


def prediction_drift_rules(
    config: Config, n: Names = NAMES, limits: Limits = LIMITS
) -> list[Recording | Alert]:
    w = limits.drift_window
    buckets = q.sel(f"{names.METRIC_PREDICTION}_bucket", q.MODEL_JOB)
    count = q.sel(f"{names.METRIC_PREDICTION}_count", q.MODEL_JOB)
    # One-sample Kolmogorov-Smirnov critical value: D * sqrt(n) > K(1 - p) (Kolmogorov distribution).
    ks_critical = q.number(float(stats.kstwobign.isf(config.drift.p_value)))
    ks_limit = q.number(limits.prediction_ks_threshold)
    return [
        Recording(
            n.prediction_cdf,
            f"sum {q.by((*q.BY_VERSION, 'le'))} (rate({buckets}[{w}]))\n/ ignoring (le) group_left ()\n"
            f"(sum {q.by(q.BY_VERSION)} (rate({count}[{w}])) > 0)",
        ),
        Recording(
            n.prediction_reference,
            f"max {q.by((*q.BY_VERSION, 'le'))} ({q.sel(names.METRIC_PREDICTION_REFERENCE, q.MODEL_JOB)})",
        ),
        Recording(
            n.prediction_ks,
            f"max {q.by(q.BY_VERSION)} (\n  abs({n.prediction_cdf} - {n.prediction_reference})\n)",
        ),
        Recording(n.prediction_observations, f"sum {q.by(q.BY_VERSION)} (increase({count}[{w}]))"),
        Alert(
            name="PredictionDrift",
            expr=(
                f"{n.prediction_ks} > {ks_limit}\nand\n"
                f"{n.prediction_ks} * sqrt({n.prediction_observations}) > {ks_critical}"
            ),
            for_="15m",
            severity="ticket",
            summary="Predictions of model {{ $labels.model_version }} shifted from its training predictions",
            description=(
                f"Over the last {w}, the Kolmogorov-Smirnov distance between served predictions of "
                "{{ $labels.model_version }} ({{ $labels.role }}) and its predictions on the training set is "
                f'{{{{ $value | printf "%.3f" }}}} (limit {ks_limit}, significant at p < '
                f"{q.number(config.drift.p_value)})."
            ),
            signals=(n.prediction_ks, n.prediction_observations),
        ),
    ]


def _bento_requests(window: str, *matchers: str) -> str:
    selector = q.sel(names.METRIC_BENTO_REQUESTS, q.MODEL_JOB, q.PREDICT_ENDPOINTS, *matchers)
    return f"sum {q.by(q.BY_ROLE)} (rate({selector}[{window}]))"


def rejection_rules(n: Names = NAMES, limits: Limits = LIMITS) -> list[Recording | Alert]:
    w = limits.rejection_window
    limit = q.number(limits.rejection_ratio)
    return [
        Recording(
            n.rejections,
            f"{q.zero_filled(_bento_requests(w, q.REJECTED_CODES), _bento_requests(w))}\n"
            f"/\n({_bento_requests(w)} > 0)",
        ),
        Alert(
            name="InputRejectionRateHigh",
            expr=f"{n.rejections} > {limit}",
            for_="15m",
            severity="ticket",
            summary="Many prediction requests are rejected as invalid ({{ $labels.role }})",
            description=(
                "{{ $value | humanizePercentage }} of prediction requests to the {{ $labels.role }} servers "
                f"were rejected as invalid input over {w} (limit {q.number(limits.rejection_ratio * 100)}%). "
                f"{names.METRIC_REJECTED} names the fields and error types."
            ),
            signals=(n.rejections,),
        ),
    ]


def staleness_rules(config: Config, n: Names = NAMES) -> list[Recording | Alert]:
    """ModelStale: a model is stale past the age its own measured staleness curve allows
    (``mlship_model_max_age_seconds``, exported for models measured on timestamped data with `mlship model
    staleness`); a model without a measured curve falls back to ``drift.max_model_age_days``."""
    max_age = config.drift.max_model_age_days * 86400
    trained = q.sel(names.METRIC_MODEL_TRAINED, q.MODEL_JOB)
    measured = f"max {q.by(q.BY_VERSION)} ({q.sel(names.METRIC_MODEL_MAX_AGE, q.MODEL_JOB)})"
    match = q.on(q.BY_VERSION)
    return [
        Recording(n.model_age, f"time() - max {q.by(q.BY_VERSION)} ({trained})"),
        Alert(
            name="ModelStale",
            expr=(
                f"{n.model_age} > {match} {measured}\nor\n"
                f"({n.model_age} > {q.number(max_age)} unless {match} {measured})"
            ),
            for_="10m",
            severity="ticket",
            summary="Model {{ $labels.model_version }} is older than its staleness limit",
            description=(
                "The {{ $labels.role }} servers run model {{ $labels.model_version }}, trained "
                "{{ $value | humanizeDuration }} ago; the limit is the age at which its measured staleness "
                "curve degrades beyond tolerance (mlship_model_max_age_seconds), or "
                f"{q.number(config.drift.max_model_age_days)} days (drift.max_model_age_days) for a model "
                "without one."
            ),
            signals=(n.model_age,),
        ),
    ]


def skew_rules(n: Names = NAMES, limits: Limits = LIMITS) -> list[Recording | Alert]:
    w = limits.skew_window

    def rate(metric: str) -> str:
        return f"sum {q.by(q.BY_VERSION)} (rate({q.sel(metric, q.MODEL_JOB)}[{w}]))"

    checks = rate(names.METRIC_SKEW_CHECKS)
    limit = q.number(limits.skew_mismatch_ratio)
    return [
        Recording(n.skew, f"{q.zero_filled(rate(names.METRIC_SKEW_MISMATCHES), checks)}\n/\n({checks} > 0)"),
        Alert(
            name="TrainingServingSkew",
            expr=f"{n.skew} > {limit}",
            for_="10m",
            severity="ticket",
            summary="Online features differ from the training pipeline's (model {{ $labels.model_version }})",
            description=(
                "{{ $value | humanizePercentage }} of re-checked served rows of model "
                "{{ $labels.model_version }} "
                "({{ $labels.role }}) got different features online than through the offline (training) "
                f"pipeline over {w} (limit {q.number(limits.skew_mismatch_ratio * 100)}%)."
            ),
            signals=(n.skew,),
        ),
    ]


def model_data_group(config: Config) -> Group:
    rules = [
        *feature_drift_rules(config),
        *prediction_drift_rules(config),
        *rejection_rules(),
        *staleness_rules(config),
        *skew_rules(),
    ]
    return Group(name="mlship-model-data", file="model-data", rules=tuple(rules))
