"""The model allows debugging (ML Test Score, Infra 5): one example's computation step by step, ending in
exactly the prediction the server returns."""

from __future__ import annotations

import pytest

from mlship import names
from mlship.errors import RefusedError
from mlship.model import debug


def row_of(rows, i: int) -> dict:
    return {k: (int(v) if k == "sex" else float(v)) for k, v in rows.iloc[i].to_dict().items()}


def test_a_boosted_model_is_traced_stage_by_stage_to_the_served_prediction(served, models, heldout):
    _, client = served
    row = row_of(heldout[0], 0)
    record = models["baseline"]
    t = debug.trace_record(record.tag, row)
    served_value = client.post(names.ENDPOINT_PREDICT, json=row).json()["prediction"]
    assert t.prediction == served_value == t.steps[-1]
    assert len(t.steps) == record.metadata["hyperparameters"]["n_estimators"]
    assert t.features["bmi"] == row["bmi"]
    assert t.first_tree_path and all(
        s.went == ("left" if s.value <= s.threshold else "right") for s in t.first_tree_path
    )


def test_a_forest_is_traced_tree_by_tree(models, heldout):
    t = debug.trace_record(models["slow"].tag, row_of(heldout[0], 1))
    assert len(t.steps) == 500 and t.steps[-1] == pytest.approx(t.prediction)
    assert t.step_kind == "mean of the first k trees"


def test_an_invalid_row_is_refused_naming_the_field(models, heldout):
    row = {**row_of(heldout[0], 0), "bmi": 1000.0}
    with pytest.raises(RefusedError, match="bmi"):
        debug.trace_record(models["baseline"].tag, row)
