"""The impact of model staleness is known (ML Test Score, Model 4).

Models with the served model's recipe (``sklearn.base.clone``) are trained on a window of data ending
right before an evaluation block of the newest data (fresh), and on the same window moved back by each
lag (stale). The RMSE growth at each lag is the impact of serving a model that much older.

* ``measure_by_time`` - on data with timestamps: lags and windows in days. The curve gives the age at
  which the RMSE has grown by ``tolerance`` (``max_age_days``), the limit `ModelStale` fires at for that
  model (``mlship model staleness`` stores it with the model; the server exports it).
* ``measure`` - on data without timestamps (the bundled diabetes data): dataset row order stands in for
  arrival order. That is a proxy - nothing says the rows arrived in that order - and its lags are in
  rows, so it gives no age limit. Its figure says so (verdict ``proxy``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from mlship.model import data, features, training

DEFAULT_LAGS = (0.0, 0.1, 0.2, 0.3)
# Relative RMSE growth at which a model is stale: the quality gate's own tolerance for a new model.
DEFAULT_TOLERANCE = 0.05
STALENESS_FILE = "staleness.json"  # stored with the model by `mlship model staleness`
ROW_ORDER_PROXY = (
    "the data has no timestamps: dataset row order stands in for arrival order, so the curve is in rows, "
    "not days, and gives no age limit"
)


@dataclass(frozen=True)
class TimedPoint:
    age_days: float  # how much older the training window is than the fresh one
    train_window: tuple[str, str]  # [start, end) as ISO dates
    train_rows: int
    rmse: float
    degradation: float  # relative RMSE growth against the fresh model (age 0)


def measure_by_time(
    estimator: Any,
    feature_version: str,
    frame: pd.DataFrame,
    time_column: str,
    *,
    ages_days: Sequence[float],
    window_days: float,
    test_days: float,
    target: str = data.TARGET,
    seeds: Sequence[int] = (0, 1, 2),
    min_rows: int = 50,
) -> list[TimedPoint]:
    """RMSE on the newest ``test_days`` of models trained on ``window_days`` windows aged by each age."""
    if not ages_days or ages_days[0] != 0.0 or list(ages_days) != sorted(set(ages_days)):
        raise ValueError("ages_days must be increasing ages starting at 0")
    if time_column not in frame.columns:
        raise ValueError(
            f"no column {time_column!r} in the data (columns: {', '.join(map(str, frame.columns))})"
        )
    times = pd.to_datetime(frame[time_column], utc=True, errors="coerce")
    if times.isna().any():
        raise ValueError(f"{int(times.isna().sum())} rows of {time_column!r} are not timestamps")
    rows = frame.drop(columns=[time_column, target])
    x, kept = features.transform_for_training(rows, feature_version)
    y = frame[target].to_numpy()[kept]
    t = times.to_numpy()[kept]
    test_start = t.max() - np.timedelta64(int(test_days * 86400), "s")
    test = t > test_start
    if test.sum() < min_rows:
        raise ValueError(f"only {int(test.sum())} rows in the newest {test_days:g} days; need {min_rows}")
    points: list[TimedPoint] = []
    fresh = None
    for age in ages_days:
        end = test_start - np.timedelta64(int(age * 86400), "s")
        start = end - np.timedelta64(int(window_days * 86400), "s")
        window = (t > start) & (t <= end)
        if window.sum() < min_rows:
            raise ValueError(
                f"only {int(window.sum())} rows in the {window_days:g}-day window aged {age:g} days; "
                f"need {min_rows}"
            )
        rmses = []
        for seed in seeds:
            model = clone(estimator)
            if "random_state" in model.get_params():
                model.set_params(random_state=seed)
            model.fit(x[window], y[window])
            rmses.append(training.evaluate(y[test], model.predict(x[test]))["rmse"])
        rmse = float(np.mean(rmses))
        fresh = rmse if fresh is None else fresh
        points.append(
            TimedPoint(
                age_days=float(age),
                train_window=(str(pd.Timestamp(start).date()), str(pd.Timestamp(end).date())),
                train_rows=int(window.sum()),
                rmse=round(rmse, 4),
                degradation=round(rmse / fresh - 1, 4),
            )
        )
    return points


def max_age_days(points: Sequence[TimedPoint], tolerance: float = DEFAULT_TOLERANCE) -> float | None:
    """The age at which the measured degradation first reaches ``tolerance`` (linear between points).

    None when no measured age reaches it: the curve says nothing about older models, so no limit is made
    up beyond it.
    """
    for before, after in itertools.pairwise(points):
        if after.degradation >= tolerance:
            if after.degradation == before.degradation:
                return after.age_days
            share = (tolerance - before.degradation) / (after.degradation - before.degradation)
            return round(before.age_days + max(0.0, share) * (after.age_days - before.age_days), 2)
    return None


@dataclass(frozen=True)
class StalenessPoint:
    lag_share: float  # how many rows older the training window is, as a share of all rows
    lag_rows: int
    train_rows: tuple[int, int]  # [start, end) in arrival order
    rmse: float
    degradation: float  # relative RMSE growth against the fresh model (lag 0)


def measure(
    estimator: Any,
    feature_version: str,
    frame: pd.DataFrame | None = None,
    *,
    lags: Sequence[float] = DEFAULT_LAGS,
    window_share: float = 0.5,
    test_share: float = 0.2,
    seeds: Sequence[int] = (0, 1, 2),
) -> list[StalenessPoint]:
    """RMSE on the newest rows of models trained on older and older windows (mean over ``seeds``)."""
    if not lags or lags[0] != 0.0 or list(lags) != sorted(set(lags)):
        raise ValueError("lags must be increasing shares of rows starting at 0.0")
    frame = data.load_frame() if frame is None else frame
    n = len(frame)
    test_start = round(n * (1 - test_share))
    window = round(n * window_share)
    if test_start - window - round(n * lags[-1]) < 0:
        raise ValueError(
            f"not enough rows: a window of {window} rows lagged by {lags[-1]:.0%} starts before the data"
        )
    x, kept = features.transform_for_training(frame.drop(columns=[data.TARGET]), feature_version)
    y = frame[data.TARGET].to_numpy()[kept]
    position = np.flatnonzero(kept)  # arrival index of each kept row
    test = position >= test_start
    points: list[StalenessPoint] = []
    fresh = None
    for lag in lags:
        end = test_start - round(n * lag)
        start = end - window
        rows = (position >= start) & (position < end)
        rmses = []
        for seed in seeds:
            model = clone(estimator)
            if "random_state" in model.get_params():
                model.set_params(random_state=seed)
            model.fit(x[rows], y[rows])
            rmses.append(training.evaluate(y[test], model.predict(x[test]))["rmse"])
        rmse = float(np.mean(rmses))
        fresh = rmse if fresh is None else fresh
        points.append(
            StalenessPoint(
                lag_share=lag,
                lag_rows=round(n * lag),
                train_rows=(start, end),
                rmse=round(rmse, 4),
                degradation=round(rmse / fresh - 1, 4),
            )
        )
    return points


def as_records(points: Sequence[StalenessPoint | TimedPoint]) -> list[dict[str, Any]]:
    return [asdict(p) for p in points]
