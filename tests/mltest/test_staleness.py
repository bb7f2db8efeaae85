"""The impact of model staleness is known (ML Test Score, Model 4): models with the served recipe trained on
older and older windows, scored on the newest data; the degradation curve is recorded.

The bundled diabetes data has no timestamps: its curve uses row order for time and its figure says so
(verdict ``proxy``). On timestamped data the curve is in days and gives the age limit `ModelStale` uses
for the model; that path is tested on synthetic data whose labels drift with time (no timestamps are
invented for the diabetes data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
            "time_basis": "row order",
            "points": staleness.as_records(points),
            "worst_degradation": max(p.degradation for p in points),
            "max_age_days": None,
        },
        verdict="proxy",
        proxy_reason=staleness.ROW_ORDER_PROXY,
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


def timestamped(drift_per_day: float, days: int = 400, seed: int = 0) -> pd.DataFrame:
    """The diabetes rows resampled onto `days` days, the label drifting by `drift_per_day` a day.

    A stand-in for a user's timestamped data: the mechanism is what is tested, the figures are not Model
    4's evidence for the served model.
    """
    rng = np.random.default_rng(seed)
    frame = data.load_frame()
    rows = frame.sample(n=2000, replace=True, random_state=seed).reset_index(drop=True)
    day = np.sort(rng.uniform(0, days, len(rows)))
    rows[data.TARGET] = rows[data.TARGET] + drift_per_day * day
    rows["at"] = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(day, unit="D")
    return rows


def test_on_timestamped_data_the_curve_is_in_days_and_gives_the_stale_limit(models):
    record = models["baseline"]
    points = staleness.measure_by_time(
        record.load_estimator(),
        "v1",
        timestamped(drift_per_day=0.5),
        "at",
        ages_days=(0, 30, 60, 90, 120),
        window_days=90,
        test_days=30,
        seeds=(0,),
    )
    assert [p.age_days for p in points] == [0, 30, 60, 90, 120]
    degradations = [p.degradation for p in points]
    assert degradations[0] == 0.0 and degradations == sorted(degradations), degradations
    limit = staleness.max_age_days(points, tolerance=0.05)
    assert limit is not None and 0 < limit <= 120
    crossing = next(p for p in points if p.degradation >= 0.05)
    assert limit <= crossing.age_days


def test_a_world_that_does_not_move_gives_no_limit_beyond_the_curve(models):
    points = staleness.measure_by_time(
        models["baseline"].load_estimator(),
        "v1",
        timestamped(drift_per_day=0.0),
        "at",
        ages_days=(0, 60, 120),
        window_days=90,
        test_days=30,
        seeds=(0,),
    )
    assert staleness.max_age_days(points, tolerance=0.25) is None


def test_timestamped_data_needs_a_real_time_column_and_enough_rows(models):
    estimator = models["baseline"].load_estimator()
    frame = timestamped(0.1)
    with pytest.raises(ValueError, match="no column 'when'"):
        staleness.measure_by_time(
            estimator, "v1", frame, "when", ages_days=(0,), window_days=90, test_days=30
        )
    broken = frame.assign(at="yesterday")
    with pytest.raises(ValueError, match="not timestamps"):
        staleness.measure_by_time(estimator, "v1", broken, "at", ages_days=(0,), window_days=90, test_days=30)
    with pytest.raises(ValueError, match="rows in the 90-day window aged 1000"):
        staleness.measure_by_time(
            estimator, "v1", frame, "at", ages_days=(0, 1000), window_days=90, test_days=30
        )
