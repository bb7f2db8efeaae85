"""The service's own Prometheus metrics, next to BentoML's (names in mlship/names.py).

Uses prometheus_client directly: BentoML sets PROMETHEUS_MULTIPROC_DIR for its workers and serves
every worker's samples on /metrics, so gauges declare how workers' values combine.

The request path uses ``HotMetrics``: every labelled child it touches (per version, endpoint, feature
and bin) is resolved once at start, so a prediction costs a list index and an increment per series,
not a label look-up (``labels()`` takes a lock and formats the label tuple on every call).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

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
        self.nonfinite = Counter(
            names.METRIC_NON_FINITE.removesuffix("_total"),
            "Requests whose model answered a non-finite prediction (answered 500)",
            [_V, "endpoint"],
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


class HotMetrics:
    """The request path's metric children, resolved once for this server's version and schema.

    ``features``: (name, numeric bin edges or None, categorical values or None) per column of the raw
    matrix the server scores, in that matrix's column order.
    """

    def __init__(
        self,
        metrics: ServiceMetrics,
        features: Sequence[tuple[str, Sequence[float] | None, Sequence[Any] | None]],
        endpoints: Sequence[str],
    ) -> None:
        v = metrics.version
        self.metrics = metrics
        self.histogram = metrics.prediction.labels(v)
        self.predictions = {e: metrics.predictions.labels(v, e) for e in endpoints}
        self.nonfinite = {e: metrics.nonfinite.labels(v, e) for e in endpoints}
        self.skew_checks = metrics.skew_checks.labels(v)
        self.skew_mismatches = metrics.skew_mismatches.labels(v)
        # per column: (bin edges | None, {categorical value: bin} | None, children by bin index)
        self.columns: list[tuple[list[float] | None, dict[float, int] | None, list[Any]]] = []
        for name, edges, allowed in features:
            if edges is not None:
                n_bins = len(edges) + 1
                lookup = None
            else:
                assert allowed is not None
                n_bins = len(allowed)
                lookup = {float(a): i for i, a in enumerate(allowed)}
            children = [metrics.feature_bin.labels(v, name, str(i)) for i in range(n_bins)]
            self.columns.append((list(edges) if edges is not None else None, lookup, children))
        # the same children flattened, feature after feature: series k = offset of its feature + bin
        sizes = [len(children) for _, _, children in self.columns]
        self._offsets = np.cumsum([0, *sizes[:-1]], dtype=np.int64)
        self._flat_children = [c for _, _, children in self.columns for c in children]
        self._rejected: dict[tuple[str, str], Any] = {}

    def observe_row(self, row: Sequence[float], prediction: float, endpoint: str) -> None:
        """One scored row: the same series as ``observe_rows`` without numpy's per-call overhead."""
        self.histogram.observe(prediction)
        self.predictions[endpoint].inc()
        for (edges, lookup, children), value in zip(self.columns, row, strict=True):
            # bisect_left == np.searchsorted(side="left"), the reference bins' definition (Schema.bin_index)
            children[bisect_left(edges, value) if edges is not None else lookup[value]].inc()  # type: ignore[index]

    def observe_rows(self, raw: np.ndarray, predictions: np.ndarray, endpoint: str) -> None:
        """A batch: every feature's bins counted in one ``bincount``, each touched series incremented once."""
        self._observe_predictions(predictions)
        self.predictions[endpoint].inc(len(predictions))
        idx = np.empty(raw.shape, dtype=np.int64)
        for j, (edges, lookup, _) in enumerate(self.columns):
            if edges is not None:
                idx[:, j] = np.searchsorted(edges, raw[:, j], side="left")
            else:
                assert lookup is not None
                idx[:, j] = [lookup[x] for x in raw[:, j].tolist()]
        counts = np.bincount((idx + self._offsets).ravel(), minlength=len(self._flat_children))
        for k in np.flatnonzero(counts).tolist():
            self._flat_children[k].inc(float(counts[k]))

    def _observe_predictions(self, predictions: np.ndarray) -> None:
        """``histogram.observe`` for each value, as one increment per touched bucket.

        Uses the child's bucket counters (``_upper_bounds``, ``_buckets``, ``_sum`` of prometheus_client
        0.26, pinned); a client without them gets the plain loop. tests/service compares both.
        """
        hist = self.histogram
        bounds = getattr(hist, "_upper_bounds", None)
        if bounds is None or not hasattr(hist, "_buckets") or not hasattr(hist, "_sum"):
            for value in predictions.tolist():
                hist.observe(value)
            return
        # observe() counts a value in the first bucket whose bound is >= the value ("le")
        where = np.searchsorted(np.asarray(bounds, dtype=float), predictions, side="left")
        counts = np.bincount(where, minlength=len(bounds))
        for i in np.flatnonzero(counts).tolist():
            hist._buckets[i].inc(float(counts[i]))
        hist._sum.inc(float(predictions.sum()))

    def reject(self, reason: str, field: str) -> None:
        child = self._rejected.get((reason, field))
        if child is None:
            child = self._rejected[(reason, field)] = self.metrics.rejected.labels(
                self.metrics.version, reason, field
            )
        child.inc()


def _le(value: float) -> str:
    """Format a bucket bound exactly as prometheus_client does for the histogram's `le` label."""
    from prometheus_client.utils import floatToGoString

    return floatToGoString(value)
