"""Prometheus metrics of outcome feedback: online quality per model version and role, refusals, drops.

Any server may receive an outcome (the router balances /feedback like /predict); the joined outcome is
counted with the version and role of the server that made the prediction, so summing over servers gives
each version's online quality (rules: mlship/monitoring/quality_rules.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from mlship import names
from mlship.feedback.store import Joined

_V = names.LABEL_MODEL_VERSION
_R = names.LABEL_PREDICTION_ROLE


class FeedbackMetrics:
    def __init__(self, version: str) -> None:
        self.version = version
        self.outcomes = Counter(
            names.METRIC_OUTCOMES.removesuffix("_total"),
            "Outcomes joined to a served prediction, by the prediction's model version and role",
            [_V, _R],
        )
        self.squared_error = Counter(
            names.METRIC_OUTCOME_SQUARED_ERROR.removesuffix("_total"),
            "Sum of (prediction - outcome)^2 over joined outcomes (online MSE = this / outcomes)",
            [_V, _R],
        )
        self.abs_error = Histogram(
            names.METRIC_OUTCOME_ABS_ERROR,
            "|prediction - outcome| of joined outcomes",
            [_V, _R],
            buckets=[*names.OUTCOME_ABS_ERROR_BUCKETS, float("inf")],
        )
        self.rejected = Counter(
            names.METRIC_FEEDBACK_REJECTED.removesuffix("_total"),
            "Outcome submissions refused, by reason and field",
            [_V, names.LABEL_REASON, names.LABEL_FIELD],
        )
        self.dropped = Counter(
            names.METRIC_FEEDBACK_DROPPED.removesuffix("_total"),
            "Served predictions not recorded for feedback (queue full or store unavailable)",
            [_V],
        )
        self.offline_rmse = Gauge(
            names.METRIC_MODEL_OFFLINE_RMSE,
            "Held-out RMSE stored with the serving model",
            [_V],
            multiprocess_mode="livemax",
        )

    def joined(self, outcomes: list[Joined]) -> None:
        for j in outcomes:
            labels = (j.model_version, j.role)
            self.outcomes.labels(*labels).inc()
            self.squared_error.labels(*labels).inc(j.error**2)
            self.abs_error.labels(*labels).observe(abs(j.error))

    def reject(self, reason: str, field: str) -> None:
        self.rejected.labels(self.version, reason, field).inc()

    def drop(self, count: int) -> None:
        self.dropped.labels(self.version).inc(count)
