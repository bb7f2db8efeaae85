"""Monitor 7: outcomes joined to served predictions become online quality metrics per model version and
role on the model server's /metrics (what the OnlineQualityRegression rule reads), next to the offline
RMSE stored with the model."""

from __future__ import annotations

import math
import uuid

from prometheus_client import REGISTRY

from mlship import names


def _sample(name: str, **labels: str) -> float:
    for metric in REGISTRY.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_joined_outcomes_are_counted_with_their_squared_and_absolute_errors(feedback_client, valid_row):
    module, client = feedback_client
    labels = {names.LABEL_MODEL_VERSION: module.VERSION, names.LABEL_PREDICTION_ROLE: module.ROLE}
    before = {
        "n": _sample(names.METRIC_OUTCOMES, **labels),
        "sq": _sample(names.METRIC_OUTCOME_SQUARED_ERROR, **labels),
        "abs": _sample(f"{names.METRIC_OUTCOME_ABS_ERROR}_sum", **labels),
        "le10": _sample(f"{names.METRIC_OUTCOME_ABS_ERROR}_bucket", le="10.0", **labels),
    }
    errors = [3.0, -4.0, 30.0]
    body = []
    for e in errors:
        rid = uuid.uuid4().hex
        served = client.post("/predict", json=valid_row, headers={"x-request-id": rid}).json()["prediction"]
        body.append({"request_id": rid, "outcome": served - e})
    assert client.post("/feedback", json=body).json() == {"accepted": 3}
    assert _sample(names.METRIC_OUTCOMES, **labels) - before["n"] == 3
    assert math.isclose(_sample(names.METRIC_OUTCOME_SQUARED_ERROR, **labels) - before["sq"], 9 + 16 + 900)
    assert math.isclose(_sample(f"{names.METRIC_OUTCOME_ABS_ERROR}_sum", **labels) - before["abs"], 37)
    le10 = _sample(f"{names.METRIC_OUTCOME_ABS_ERROR}_bucket", le="10.0", **labels)
    assert le10 - before["le10"] == 2, "two of the three errors are within 10"


def test_refused_outcomes_are_not_counted_as_quality(feedback_client, valid_row):
    module, client = feedback_client
    labels = {names.LABEL_MODEL_VERSION: module.VERSION, names.LABEL_PREDICTION_ROLE: module.ROLE}
    before = _sample(names.METRIC_OUTCOMES, **labels)
    rid = uuid.uuid4().hex
    client.post("/predict", json=valid_row, headers={"x-request-id": rid})
    assert client.post("/feedback", json={"request_id": rid, "outcome": 1}).status_code == 200
    assert client.post("/feedback", json={"request_id": rid, "outcome": 1}).status_code == 409
    assert _sample(names.METRIC_OUTCOMES, **labels) - before == 1


def test_the_server_exports_the_offline_rmse_stored_with_its_model(feedback_client, models):
    module, _ = feedback_client
    stored = models["baseline"].metadata["metrics"]["rmse"]
    exported = _sample(names.METRIC_MODEL_OFFLINE_RMSE, **{names.LABEL_MODEL_VERSION: module.VERSION})
    assert exported == stored
