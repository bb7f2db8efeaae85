"""The model is numerically stable (ML Test Score, Monitor 5): a server refuses to become ready with a model
that predicts non-finite values on a valid row, and a served model answers every schema edge finitely."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlship import names
from mlship.serving.runtime import ModelRuntime


class Constant:
    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, x):
        return np.full(len(x), self.value)


def runtime(record, estimator) -> ModelRuntime:
    return ModelRuntime(
        name=record.name,
        version=record.version,
        estimator=estimator,
        schema=record.schema,
        metadata=record.metadata,
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_model_predicting_non_finite_values_never_becomes_ready(models, value):
    with pytest.raises(RuntimeError, match="predicts non-finite values on a valid row"):
        runtime(models["baseline"], Constant(value)).warm_up()


def test_a_finite_model_warms_up(models):
    runtime(models["baseline"], models["baseline"].load_estimator()).warm_up()


def test_the_served_model_answers_every_schema_edge_with_a_finite_prediction(served, models):
    _, client = served
    edges = models["baseline"].schema.edge_rows()
    instances = [
        {k: (int(v) if k == "sex" else float(v)) for k, v in row.items()} for row in edges.to_dict("records")
    ]
    response = client.post(names.ENDPOINT_PREDICT_BATCH, json={"instances": instances})
    assert response.status_code == 200, response.text
    assert all(math.isfinite(p) for p in response.json()["predictions"])
