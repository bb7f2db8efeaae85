"""The impact of model staleness is known (ML Test Score, Model 4).

Rows are taken in arrival order (the order of the dataset). The newest ``test_share`` of rows is the
evaluation block; models with the served model's recipe (``sklearn.base.clone``) are trained on a window
of ``window_share`` of the rows ending right before it (fresh), and on the same window moved back by
each lag (stale). The RMSE growth at each lag is the impact of serving a model that much older.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from mlship.model import data, features, training

DEFAULT_LAGS = (0.0, 0.1, 0.2, 0.3)


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


def as_records(points: list[StalenessPoint]) -> list[dict[str, Any]]:
    return [asdict(p) for p in points]
