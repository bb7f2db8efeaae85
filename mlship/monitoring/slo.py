"""Service level objectives of the model API and their multiwindow, multi-burn-rate alerts.

A small declarative definition (``SLO``) generates everything: error-ratio recording rules for each
window and the two alerts of the Google SRE workbook (chapter "Alerting on SLOs", recipe 6):

* page   when 2% of the 30-day budget burns in 1 h (14.4x, checked over 1h and 5m)
         or 5% burns in 6 h (6x, over 6h and 30m);
* ticket when 10% burns in 1 day (3x, over 1d and 2h) or 10% in 3 days (1x, over 3d and 6h).

The short window makes the alert stop soon after the burn stops; both windows must exceed the rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlship import names
from mlship.config import SLOConfig
from mlship.errors import ConfigError
from mlship.monitoring import promql as q
from mlship.monitoring.rule_types import Alert, Group, Recording, Severity

# Buckets of the model servers' request-duration histogram (mlship/names.py, set by bento/service.py).
# A latency SLO threshold must be one of them: the SLI counts the requests in the bucket ``le=threshold``.
DURATION_BUCKETS = names.LATENCY_BUCKETS


@dataclass(frozen=True)
class BurnRateWindow:
    long: str
    short: str
    factor: float


@dataclass(frozen=True)
class BurnRateAlert:
    suffix: str
    severity: Severity
    windows: tuple[BurnRateWindow, ...]


BURN_RATE_ALERTS = (
    BurnRateAlert("FastBurn", "page", (BurnRateWindow("1h", "5m", 14.4), BurnRateWindow("6h", "30m", 6.0))),
    BurnRateAlert("SlowBurn", "ticket", (BurnRateWindow("1d", "2h", 3.0), BurnRateWindow("3d", "6h", 1.0))),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
ERROR_RATIO = "slo:sli_error:ratio_rate"
OBJECTIVE = "slo:objective:ratio"


@dataclass(frozen=True)
class SLO:
    """An objective on the ratio of good events: ``error_ratio(window)`` is the PromQL bad/total."""

    name: str  # label value, e.g. "model-api-availability"
    alert_prefix: str  # e.g. "ModelAPIAvailability"
    objective: float  # e.g. 0.995
    description: str
    error_ratio: Callable[[str], str]

    @property
    def budget(self) -> float:
        return 1.0 - self.objective

    def series(self, window: str) -> str:
        return f'{ERROR_RATIO}{window}{{slo="{self.name}"}}'


def _requests(window: str, *matchers: str) -> str:
    selector = q.sel(names.METRIC_BENTO_REQUESTS, q.MODEL_JOB, q.PREDICT_ENDPOINTS, *matchers)
    return f"sum {q.by(q.SCOPE)} (rate({selector}[{window}]))"


def availability_error_ratio(window: str) -> str:
    """Share of prediction requests answered 5xx (client errors are not the service's failures)."""
    errors = q.zero_filled(_requests(window, q.SERVER_ERROR_CODES), _requests(window))
    return f"{errors}\n/\n({_requests(window)} > 0)"


def latency_error_ratio(threshold_seconds: float) -> Callable[[str], str]:
    """Share of successful prediction requests slower than the threshold."""
    if threshold_seconds not in DURATION_BUCKETS:
        raise ConfigError(
            f"slo.latency_threshold_seconds: {threshold_seconds} is not a bucket bound of "
            f"{names.METRIC_BENTO_DURATION}; choose one of {list(DURATION_BUCKETS)}"
        )
    le = q.go_float(threshold_seconds)

    def ratio(window: str) -> str:
        def rate(suffix: str, *extra: str) -> str:
            selector = q.sel(
                f"{names.METRIC_BENTO_DURATION}_{suffix}",
                q.MODEL_JOB,
                q.PREDICT_ENDPOINTS,
                q.SUCCESS_CODES,
                *extra,
            )
            return f"sum {q.by(q.SCOPE)} (rate({selector}[{window}]))"

        fast = rate("bucket", f'le="{le}"')
        return f"1 - (\n  {fast}\n  /\n  ({rate('count')} > 0)\n)"

    return ratio


def model_api_slos(config: SLOConfig) -> list[SLO]:
    threshold_ms = q.number(config.latency_threshold_seconds * 1000)
    return [
        SLO(
            name="model-api-availability",
            alert_prefix="ModelAPIAvailability",
            objective=config.availability,
            description=f"{q.number(config.availability * 100)}% of prediction requests succeed (not 5xx)",
            error_ratio=availability_error_ratio,
        ),
        SLO(
            name="model-api-latency",
            alert_prefix="ModelAPILatency",
            objective=config.latency_target,
            description=(
                f"{q.number(config.latency_target * 100)}% of successful prediction requests "
                f"complete within {threshold_ms} ms"
            ),
            error_ratio=latency_error_ratio(config.latency_threshold_seconds),
        ),
    ]


def _condition(slo: SLO, window: BurnRateWindow) -> str:
    limit = q.number(window.factor * slo.budget)
    return f"(\n  {slo.series(window.long)} > {limit}\n  and\n  {slo.series(window.short)} > {limit}\n)"


def slo_group(slo: SLO) -> Group:
    rules: list[Recording | Alert] = [
        Recording(f"{ERROR_RATIO}{w}", slo.error_ratio(w), {"slo": slo.name}) for w in WINDOWS
    ]
    rules.append(Recording(OBJECTIVE, f"vector({q.number(slo.objective)})", {"slo": slo.name}))
    for burn in BURN_RATE_ALERTS:
        rates = " or ".join(f"{q.number(w.factor)}x over {w.long}/{w.short}" for w in burn.windows)
        rules.append(
            Alert(
                name=f"{slo.alert_prefix}{burn.suffix}",
                expr="\nor\n".join(_condition(slo, w) for w in burn.windows),
                severity=burn.severity,
                summary=f"Model API is burning its {slo.name} error budget ({burn.suffix})",
                description=(
                    f"SLO: {slo.description}. The error ratio is {{{{ $value | humanizePercentage }}}} "
                    f"against a budget of {q.number(slo.budget * 100)}%; burn rate above {rates}."
                ),
                signals=tuple(slo.series(w) for b in burn.windows for w in (b.long, b.short)),
                labels={"slo": slo.name},
            )
        )
    return Group(name=f"mlship-slo-{slo.name}", file="slo", rules=tuple(rules))
