"""`mlship drift`: served data against the training reference, read from Prometheus.

Counts come from the model servers' metrics over a window (``increase`` of the per-bin counters and
of the prediction histogram); each model version carries its own training reference, so canary and
stable are judged each against the data they were trained on.

JSON output (``--json``)::

    {
      "against": "training",
      "window": "1h",
      "prometheus_url": "http://127.0.0.1:9090",
      "evaluated_at": 1767225600.0,               # unix time the queries were evaluated at
      "psi_threshold": 0.2, "p_value": 0.01, "prediction_ks_threshold": 0.1,
      "drift": true,                              # any feature or prediction verdict is "drift"
      "versions": [
        {
          "namespace": "", "role": "stable", "model_version": "6ea04dcb1185",
          "features": [
            {"feature": "bmi", "kind": "numeric", "observations": 3600.0, "psi": 0.41,
             "chi2": {"statistic": 812.3, "df": 9, "p_value": 0.0},
             "ks": {"statistic": 0.21, "p_value": 1.2e-140},     # null for categorical features
             "test": "ks", "p_value": 1.2e-140,                  # the test the verdict used
             "verdict": "drift"}                                  # or "no drift", "insufficient data"
          ],
          "predictions": {"observations": 3600.0, "ks": {"statistic": 0.05, "p_value": 0.002},
                          "verdict": "no drift"}                  # null without prediction data
        }
      ]
    }
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlship import names
from mlship.config import Config
from mlship.errors import MlshipError
from mlship.monitoring import drift
from mlship.monitoring import promql as q
from mlship.monitoring.limits import LIMITS
from mlship.promclient import Prometheus

VersionKey = tuple[str, str, str]  # namespace, role, model_version
KindLookup = Callable[[str], dict[str, drift.Kind]]


@dataclass(frozen=True)
class PredictionDrift:
    observations: float
    ks: drift.TestResult
    verdict: drift.Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "observations": round(self.observations, 3),
            "ks": {"statistic": round(self.ks.statistic, 6), "p_value": self.ks.p_value},
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class VersionReport:
    namespace: str
    role: str
    model_version: str
    features: list[drift.FeatureDrift]
    predictions: PredictionDrift | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "role": self.role,
            "model_version": self.model_version,
            "features": [f.to_dict() for f in self.features],
            "predictions": None if self.predictions is None else self.predictions.to_dict(),
        }


@dataclass(frozen=True)
class DriftReport:
    window: str
    prometheus_url: str
    evaluated_at: float
    psi_threshold: float
    p_value: float
    prediction_ks_threshold: float
    versions: list[VersionReport] = field(default_factory=list)
    against: str = "training"

    @property
    def drift(self) -> bool:
        return any(f.verdict == "drift" for v in self.versions for f in v.features) or any(
            v.predictions is not None and v.predictions.verdict == "drift" for v in self.versions
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "window": self.window,
            "prometheus_url": self.prometheus_url,
            "evaluated_at": self.evaluated_at,
            "psi_threshold": self.psi_threshold,
            "p_value": self.p_value,
            "prediction_ks_threshold": self.prediction_ks_threshold,
            "drift": self.drift,
            "versions": [v.to_dict() for v in self.versions],
        }


def _key(labels: dict[str, str]) -> VersionKey:
    return (
        labels.get("namespace", ""),
        labels.get(names.LABEL_ROLE, ""),
        labels.get(names.LABEL_MODEL_VERSION, ""),
    )


def feature_queries(window: str) -> tuple[str, str]:
    counts = q.sel(names.METRIC_FEATURE_BIN, q.MODEL_JOB)
    reference = q.sel(names.METRIC_FEATURE_REFERENCE, q.MODEL_JOB)
    return (
        f"sum {q.by(q.BY_BIN)} (increase({counts}[{window}]))",
        f"max {q.by(q.BY_BIN)} ({reference})",
    )


def prediction_queries(window: str) -> tuple[str, str]:
    buckets = q.sel(f"{names.METRIC_PREDICTION}_bucket", q.MODEL_JOB)
    reference = q.sel(names.METRIC_PREDICTION_REFERENCE, q.MODEL_JOB)
    by_le = (*q.BY_VERSION, "le")
    return (
        f"sum {q.by(by_le)} (increase({buckets}[{window}]))",
        f"max {q.by(by_le)} ({reference})",
    )


def _prediction_drift(
    counts: dict[float, float], reference: dict[float, float], *, ks_threshold: float, p_value: float
) -> PredictionDrift | None:
    total = counts.get(float("inf"), 0.0)
    bounds = sorted(le for le in counts if le in reference and np.isfinite(le))
    if not bounds:
        return None
    if total <= 0:
        return PredictionDrift(0.0, drift.TestResult("ks", 0.0, 1.0), "insufficient data")
    distance = max(abs(counts[le] / total - reference[le]) for le in bounds)
    result = drift.TestResult("ks", distance, drift.ks_p_value(distance, total))
    verdict: drift.Verdict = "drift" if distance > ks_threshold and result.p_value < p_value else "no drift"
    return PredictionDrift(total, result, verdict)


def collect(
    prometheus: Prometheus, config: Config, *, window: str, kinds: KindLookup, at: float | None = None
) -> DriftReport:
    """Query Prometheus once per series family and judge every (version, feature)."""
    at = time.time() if at is None else at
    counts_q, reference_q = feature_queries(window)
    counts: dict[VersionKey, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    reference: dict[VersionKey, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for sample in prometheus.query(reference_q, time=at):
        reference[_key(sample.labels)][sample.labels[names.LABEL_FEATURE]][
            int(sample.labels[names.LABEL_BIN])
        ] = sample.value
    for sample in prometheus.query(counts_q, time=at):
        counts[_key(sample.labels)][sample.labels[names.LABEL_FEATURE]][
            int(sample.labels[names.LABEL_BIN])
        ] = sample.value
    served = [key for key in reference if key in counts]
    if not served:
        raise MlshipError(
            f"no served feature counts in Prometheus at {prometheus.url} over the last {window} "
            f"({names.METRIC_FEATURE_BIN} of job {names.JOB_MODEL}); is traffic flowing to the model servers?"
        )
    pred_counts_q, pred_reference_q = prediction_queries(window)
    pred_counts: dict[VersionKey, dict[float, float]] = defaultdict(dict)
    pred_reference: dict[VersionKey, dict[float, float]] = defaultdict(dict)
    for sample in prometheus.query(pred_counts_q, time=at):
        pred_counts[_key(sample.labels)][float(sample.labels["le"])] = sample.value
    for sample in prometheus.query(pred_reference_q, time=at):
        pred_reference[_key(sample.labels)][float(sample.labels["le"])] = sample.value

    versions = []
    for key in sorted(served):
        feature_kinds = kinds(key[2])
        features = []
        for feature in sorted(reference[key]):
            bins = sorted(reference[key][feature])
            if len(bins) < 2:
                continue  # a constant feature cannot drift between bins
            ref = [reference[key][feature][b] for b in bins]
            served_counts = [counts[key][feature].get(b, 0.0) for b in bins]
            features.append(
                drift.judge(
                    feature,
                    feature_kinds.get(feature, "unknown"),
                    served_counts,
                    ref,
                    psi_threshold=config.drift.psi_threshold,
                    p_value=config.drift.p_value,
                )
            )
        predictions = _prediction_drift(
            pred_counts.get(key, {}),
            pred_reference.get(key, {}),
            ks_threshold=LIMITS.prediction_ks_threshold,
            p_value=config.drift.p_value,
        )
        versions.append(VersionReport(*key, features=features, predictions=predictions))
    return DriftReport(
        window=window,
        prometheus_url=prometheus.url,
        evaluated_at=at,
        psi_threshold=config.drift.psi_threshold,
        p_value=config.drift.p_value,
        prediction_ks_threshold=LIMITS.prediction_ks_threshold,
        versions=versions,
    )


def registry_kinds(model_name: str) -> KindLookup:
    """Feature kinds from the schema stored with each model in the local registry ({} if unknown)."""
    cache: dict[str, dict[str, drift.Kind]] = {}

    def lookup(version: str) -> dict[str, drift.Kind]:
        if version not in cache:
            from mlship.model import registry

            try:
                schema = registry.resolve(model_name, version).schema
            except MlshipError:
                cache[version] = {}
            else:
                cache[version] = {f.name: f.kind for f in schema.features}
        return cache[version]

    return lookup
