"""What the model server needs for feedback, built once at import: store, recorder, metrics, hooks.

bento/service.py calls ``setup`` and registers ``hooks`` with its ``on_prediction`` hook list and
``FeedbackEndpoint`` with ``endpoint_options`` as an ASGI middleware.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from mlship.feedback.metrics import FeedbackMetrics
from mlship.feedback.recorder import OnPrediction, PredictionRecorder, store_from_env
from mlship.feedback.store import FeedbackStore

LOG = logging.getLogger("mlship.feedback")


@dataclass
class Feedback:
    metrics: FeedbackMetrics
    store: FeedbackStore | None
    recorder: PredictionRecorder | None
    hooks: list[OnPrediction] = field(default_factory=list)

    @property
    def endpoint_options(self) -> dict[str, Any]:
        return {"store": self.store, "recorder": self.recorder, "metrics": self.metrics}


def setup(version: str, *, offline_rmse: float | None) -> Feedback:
    metrics = FeedbackMetrics(version)
    if offline_rmse is not None:
        metrics.offline_rmse.labels(version).set(offline_rmse)
    store = store_from_env()
    recorder = PredictionRecorder(store, on_drop=metrics.drop) if store is not None else None
    # Non-finite predictions are counted where they are refused (mlship/serving/fastpath.py), not here:
    # a request answered 500 reaches no hook.
    hooks: list[OnPrediction] = []
    if recorder is not None:
        hooks.append(recorder)
    return Feedback(metrics=metrics, store=store, recorder=recorder, hooks=hooks)
