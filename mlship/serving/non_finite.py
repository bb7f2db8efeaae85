"""Non-finite predictions at serving time: counted per model version (alert NonFinitePredictions).

Inputs are never non-finite here (the request model refuses NaN and infinities with a 400, counted in
``mlship_rejected_inputs_total``); a model can still compute NaN or an infinity from finite inputs
(an overflowing transform, a corrupted estimator). This ``on_prediction`` hook counts them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import Counter

from mlship import names


class NonFiniteCounter:
    def __init__(self) -> None:
        self.counter = Counter(
            names.METRIC_NON_FINITE.removesuffix("_total"),
            "Non-finite values met at serving time, by kind (prediction)",
            [names.LABEL_MODEL_VERSION, "kind"],
        )

    def __call__(
        self, request_id: str, version: str, role: str, rows: Sequence[Any], predictions: Iterable[float]
    ) -> None:
        bad = sum(1 for p in predictions if not math.isfinite(float(p)))
        # The series exists from the first prediction on (at 0), so a rate over it is defined.
        self.counter.labels(version, "prediction").inc(bad)
