"""The service's own Prometheus metrics, next to BentoML's (names in mlship/names.py).

Uses prometheus_client directly: BentoML sets PROMETHEUS_MULTIPROC_DIR for its workers and serves
every worker's samples on /metrics, so gauges declare how workers' values combine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prometheus_client import Counter, Gauge, Histogram

from mlship import names

_V = names.LABEL_MODEL_VERSION


class ServiceMetrics:
    def __init__(
        self, *, model_name: str, version: str, feature_version: str, schema_buckets: list[float]
    ) -> None:
        self.version = version
        self.prediction = Histogram(
            names.METRIC_PREDICTION, "Predicted values", [_V], buckets=[*schema_buckets, float("inf")]
        )
        self.prediction_reference = Gauge(
            names.METRIC_PREDICTION_REFERENCE,
            "Cumulative share of the model's training-set predictions at or below le",
            [_V, "le"],
            multiprocess_mode="livemax",
        )
        self.feature_bin = Counter(
            names.METRIC_FEATURE_BIN.removesuffix("_total"),
            "Served feature values by training-reference bin",
            [_V, names.LABEL_FEATURE, names.LABEL_BIN],
        )
        self.feature_reference = Gauge(
            names.METRIC_FEATURE_REFERENCE,
            "Share of the training data in each feature bin",
            [_V, names.LABEL_FEATURE, names.LABEL_BIN],
            multiprocess_mode="livemax",
        )
        self.rejected = Counter(
            names.METRIC_REJECTED.removesuffix("_total"),
            "Inputs rejected by validation, by pydantic error type and field",
            [_V, names.LABEL_REASON, names.LABEL_FIELD],
        )
        self.predictions = Counter(
            names.METRIC_PREDICTIONS.removesuffix("_total"), "Predictions served", [_V, "endpoint"]
        )
        self.info = Gauge(
            names.METRIC_MODEL_INFO,
            "Loaded model (value 1)",
            [_V, "model_name", "feature_version"],
            multiprocess_mode="livemax",
        )
        self.trained = Gauge(
            names.METRIC_MODEL_TRAINED,
            "Unix time the serving model was trained",
            [_V],
            multiprocess_mode="livemax",
        )
        self.max_age = Gauge(
            names.METRIC_MODEL_MAX_AGE,
            "Age at which the serving model's measured staleness curve crosses its tolerance",
            [_V],
            multiprocess_mode="livemax",
        )
        self.skew_checks = Counter(
            names.METRIC_SKEW_CHECKS.removesuffix("_total"), "Served rows re-checked offline", [_V]
        )
        self.skew_mismatches = Counter(
            names.METRIC_SKEW_MISMATCHES.removesuffix("_total"),
            "Served rows whose offline features differ from the online ones",
            [_V],
        )
        self.shadow_requests = Counter(
            names.METRIC_SHADOW_REQUESTS.removesuffix("_total"),
            "Mirrored calls to the shadow candidate, by result",
            [_V, "candidate_version", "result"],
        )
        self.shadow_abs_diff = Histogram(
            names.METRIC_SHADOW_ABS_DIFF,
            "|candidate - stable| prediction on the same mirrored request",
            [_V, "candidate_version"],
            buckets=[0.5, 1, 2, 5, 10, 20, 30, 50, 75, 100, 150, float("inf")],
        )
        self.info.labels(version, model_name, feature_version).set(1)

    def publish_reference(
        self, schema_features: list, prediction_reference: list[float], buckets: list[float]
    ) -> None:
        for feature in schema_features:
            for i, share in enumerate(feature.reference_share):
                self.feature_reference.labels(self.version, feature.name, str(i)).set(share)
        for le, share in zip(buckets, prediction_reference, strict=True):
            self.prediction_reference.labels(self.version, _le(le)).set(share)
        self.prediction_reference.labels(self.version, "+Inf").set(1.0)

    def observe(
        self, frame: pd.DataFrame, predictions: np.ndarray, bins: dict[str, np.ndarray], endpoint: str
    ) -> None:
        hist = self.prediction.labels(self.version)
        for value in predictions:
            hist.observe(float(value))
        self.predictions.labels(self.version, endpoint).inc(len(predictions))
        for feature, idx in bins.items():
            counts = np.bincount(idx)
            for b in np.nonzero(counts)[0]:
                self.feature_bin.labels(self.version, feature, str(int(b))).inc(float(counts[b]))

    def reject(self, reason: str, field: str) -> None:
        self.rejected.labels(self.version, reason, field).inc()


def _le(value: float) -> str:
    """Format a bucket bound exactly as prometheus_client does for the histogram's `le` label."""
    from prometheus_client.utils import floatToGoString

    return floatToGoString(value)
