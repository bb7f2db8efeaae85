"""Model quality is sufficient on important data slices, and the model is tested for inclusion (ML Test
Score, Model 6 and 7): no sex or age band is served much worse than the population."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlship.model.checks import inclusion

# A slice may have at most this much higher RMSE than the whole held-out set.
MAX_GAP = 0.25


@pytest.mark.parametrize("variant", ["baseline", "candidate"])
def test_every_slice_is_served_within_the_gap(models, heldout, variant, record_figure):
    rows, x, y = heldout
    record = models[variant]
    overall, gaps = inclusion.slice_gaps(rows, y, record.load_estimator().predict(x), max_gap=MAX_GAP)
    record_figure(
        f"inclusion_{variant}",
        {
            "model": record.tag,
            "overall_rmse": overall,
            "max_gap": MAX_GAP,
            "slices": inclusion.as_records(gaps),
        },
        verdict="passed" if all(g.verdict == "ok" for g in gaps) else "failed",
    )
    assert {g.slice for g in gaps} == {"sex=1", "sex=2", "age=<40", "age=40-59", "age=60+"}
    assert all(g.verdict == "ok" for g in gaps), [g for g in gaps if g.verdict != "ok"]


def test_a_model_that_fails_one_group_is_caught(models, heldout):
    rows, x, y = heldout
    predictions = models["baseline"].load_estimator().predict(x)
    older = (rows["age"] >= 60).to_numpy()
    predictions = np.where(older, predictions + 60, predictions)  # a model that is badly off for 60+
    _, gaps = inclusion.slice_gaps(rows, y, predictions, max_gap=MAX_GAP)
    assert {g.slice: g.verdict for g in gaps}["age=60+"] == "too wide"


def test_a_slice_too_small_to_judge_is_reported_not_passed():
    rows = pd.DataFrame({"sex": [1] * 30 + [2] * 3, "age": [50] * 33})
    y = np.linspace(50, 300, 33)
    _, gaps = inclusion.slice_gaps(rows, y, y + 1, max_gap=MAX_GAP)
    verdicts = {g.slice: g.verdict for g in gaps}
    assert verdicts["sex=2"] == "too few rows" and verdicts["age=<40"] == "too few rows"
    assert verdicts["sex=1"] == "ok"
