"""The impact of model staleness is known (ML Test Score, Model 4): models with the served recipe trained on
older and older windows, scored on the newest rows; the degradation curve is recorded."""

from __future__ import annotations

import pytest

from mlship.model import data
from mlship.model.checks import staleness


def test_the_staleness_curve_of_the_served_recipe_is_recorded(models, record_figure):
    record = models["baseline"]
    points = staleness.measure(record.load_estimator(), record.metadata["feature_version"])
    record_figure(
        "staleness",
        {
            "model": record.tag,
            "order": "dataset row order taken as arrival order (the demo data has no timestamps)",
            "points": staleness.as_records(points),
            "worst_degradation": max(p.degradation for p in points),
        },
    )
    assert [p.lag_share for p in points] == list(staleness.DEFAULT_LAGS)
    assert points[0].degradation == 0.0
    assert all(
        p.train_rows[1] - p.train_rows[0] == points[0].train_rows[1] - points[0].train_rows[0] for p in points
    )
    assert all(30 < p.rmse < 90 for p in points), "real models on real data"


def test_the_measurement_sees_staleness_when_the_world_drifts(models):
    """Negative control: with a label that drifts along arrival order, older models are clearly worse."""
    frame = data.load_frame()
    drifting = frame.assign(**{data.TARGET: frame[data.TARGET] + 0.5 * frame.index.to_numpy()})
    record = models["baseline"]
    points = staleness.measure(record.load_estimator(), "v1", drifting, seeds=(0,))
    degradations = [p.degradation for p in points]
    assert degradations == sorted(degradations), degradations
    assert degradations[-1] > 0.3


def test_lags_must_start_at_zero_and_fit_in_the_data(models):
    estimator = models["baseline"].load_estimator()
    with pytest.raises(ValueError, match=r"starting at 0\.0"):
        staleness.measure(estimator, "v1", lags=(0.1, 0.2))
    with pytest.raises(ValueError, match="not enough rows"):
        staleness.measure(estimator, "v1", lags=(0.0, 0.5))
