"""Monitor 5: a non-finite prediction from a valid input is refused (500) and counted at serving time
(the NonFinitePredictions alert reads the counter); non-finite inputs never reach the model (400)."""

from __future__ import annotations

import json

import numpy as np
from prometheus_client import REGISTRY

from mlship import names


def _non_finite(version: str, endpoint: str) -> float:
    value = REGISTRY.get_sample_value(
        names.METRIC_NON_FINITE, {names.LABEL_MODEL_VERSION: version, "endpoint": endpoint}
    )
    return value or 0.0


def test_finite_predictions_keep_the_counter_at_zero_but_present(client, valid_row, service_module):
    assert client.post("/predict", json=valid_row).status_code == 200
    # The series exists at 0 from the start: the alert's increase() has a baseline.
    labels = {names.LABEL_MODEL_VERSION: service_module.VERSION, "endpoint": "/predict"}
    assert REGISTRY.get_sample_value(names.METRIC_NON_FINITE, labels) is not None


def test_a_batch_with_a_non_finite_prediction_is_refused_and_counted(
    client, valid_row, service_module, monkeypatch
):
    # Stands in for a model whose computation overflows: the served estimator returns NaN and inf.
    estimator = service_module.FAST.runtime.estimator
    monkeypatch.setattr(estimator, "predict", lambda matrix: np.array([np.nan, np.inf])[: len(matrix)])
    before = _non_finite(service_module.VERSION, "/predict_batch")
    response = client.post("/predict_batch", json={"instances": [valid_row, valid_row]})
    assert response.status_code == 500
    assert _non_finite(service_module.VERSION, "/predict_batch") - before == 1  # one request refused


def test_non_finite_inputs_are_refused_before_the_model(client, valid_row, service_module):
    before = _non_finite(service_module.VERSION, "/predict")
    text = json.dumps({**valid_row, "bmi": 0.0}).replace('"bmi": 0.0', '"bmi": NaN')
    response = client.post("/predict", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert _non_finite(service_module.VERSION, "/predict") == before
