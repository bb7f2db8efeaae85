"""All features are beneficial (ML Test Score, Data 2): leave-one-feature-out and permutation importance.

Two measurements, each with a verdict per feature:

* ``drop_column_benefits`` (the paper's leave-one-feature-out): the model's recipe refitted without the
  feature, against the recipe with it, on the same repeated K-fold splits of the training rows. A
  feature's benefit is how much the cross-validated RMSE grows without it. This is the measurement that
  decides whether a feature is beneficial: it sees what the model would lose, including what a
  correlated feature cannot make up for, with hundreds of rows rather than the held-out few dozen.
* ``feature_benefits`` (permutation importance) on held-out rows, described below: it judges the fitted
  model as it serves, and finds features that mislead it on new data (harmful).

A feature's importance is how much the held-out RMSE grows when its column is shuffled. Each repeat
draws a bootstrap sample of the held-out rows and shuffles the column within it, so ``se`` (the standard
deviation over repeats) covers both the shuffle and which rows happened to be held out - with the shuffle
alone, a pure-noise column often looks significant on a small test set. Verdicts:

* ``beneficial`` - importance - 2 se > 0: shuffling it measurably hurts the model;
* ``harmful``    - importance + 2 se < -harm_tolerance x RMSE: the model is measurably better with the
  column shuffled;
* ``no measurable benefit`` otherwise: a candidate for removal (it costs, see ``feature_cost``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import RepeatedKFold

BENEFICIAL = "beneficial"
HARMFUL = "harmful"
NO_BENEFIT = "no measurable benefit"
DEFAULT_REPEATS = 50
DEFAULT_HARM_TOLERANCE = 0.01  # 1 % of the held-out RMSE


@dataclass(frozen=True)
class FeatureBenefit:
    feature: str
    importance: float  # mean increase of held-out RMSE when shuffled
    se: float  # bootstrap standard error (standard deviation over the repeats)
    relative: float  # importance / held-out RMSE
    verdict: str


def feature_benefits(
    estimator: Any,
    x: np.ndarray,
    y: np.ndarray,
    names: list[str],
    *,
    n_repeats: int = DEFAULT_REPEATS,
    seed: int = 0,
    harm_tolerance: float = DEFAULT_HARM_TOLERANCE,
) -> list[FeatureBenefit]:
    """Permutation importance of every input column of ``x`` (held-out rows), with a verdict each."""
    if x.shape[1] != len(names):
        raise ValueError(f"{x.shape[1]} columns but {len(names)} feature names")
    if n_repeats < 2:
        raise ValueError("n_repeats must be at least 2 to estimate a standard error")
    rmse = float(root_mean_squared_error(y, estimator.predict(x)))
    rng = np.random.default_rng(seed)
    drops = np.empty((n_repeats, x.shape[1]))
    for r in range(n_repeats):
        rows = rng.integers(0, len(x), len(x))
        xb, yb = x[rows], y[rows]
        base = root_mean_squared_error(yb, estimator.predict(xb))
        for j in range(x.shape[1]):
            shuffled = xb.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            drops[r, j] = root_mean_squared_error(yb, estimator.predict(shuffled)) - base
    out = []
    for name, mean, std in zip(names, drops.mean(axis=0), drops.std(axis=0, ddof=1), strict=True):
        se = float(std)
        if mean - 2 * se > 0:
            verdict = BENEFICIAL
        elif mean + 2 * se < -harm_tolerance * rmse:
            verdict = HARMFUL
        else:
            verdict = NO_BENEFIT
        out.append(
            FeatureBenefit(
                feature=name,
                importance=round(float(mean), 4),
                se=round(se, 4),
                relative=round(float(mean) / rmse, 5),
                verdict=verdict,
            )
        )
    return out


def _verdict(mean: float, se: float, rmse: float, harm_tolerance: float) -> str:
    if mean - 2 * se > 0:
        return BENEFICIAL
    if mean + 2 * se < -harm_tolerance * rmse:
        return HARMFUL
    return NO_BENEFIT


def drop_column_benefits(
    estimator: Any,
    x: np.ndarray,
    y: np.ndarray,
    names: list[str],
    *,
    seed: int,
    n_splits: int = 5,
    n_repeats: int = 2,
    columns: list[str] | None = None,
    harm_tolerance: float = DEFAULT_HARM_TOLERANCE,
) -> list[FeatureBenefit]:
    """Leave-one-feature-out: CV RMSE of the recipe without each column minus with it (same folds).

    ``se`` is the standard error of the mean paired difference over the folds. ``columns`` limits the
    measurement to some features (the others are still used by the model).
    """
    if x.shape[1] != len(names):
        raise ValueError(f"{x.shape[1]} columns but {len(names)} feature names")
    folds = list(RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed).split(x))

    def cv_rmse(cols: list[int]) -> np.ndarray:
        return np.array(
            [
                root_mean_squared_error(
                    y[test], clone(estimator).fit(x[train][:, cols], y[train]).predict(x[test][:, cols])
                )
                for train, test in folds
            ]
        )

    every = list(range(x.shape[1]))
    full = cv_rmse(every)
    out = []
    for j, name in enumerate(names):
        if columns is not None and name not in columns:
            continue
        diffs = cv_rmse([k for k in every if k != j]) - full
        mean, se = float(diffs.mean()), float(diffs.std(ddof=1) / np.sqrt(len(diffs)))
        out.append(
            FeatureBenefit(
                feature=name,
                importance=round(mean, 4),
                se=round(se, 4),
                relative=round(mean / float(full.mean()), 5),
                verdict=_verdict(mean, se, float(full.mean()), harm_tolerance),
            )
        )
    return out


def as_records(benefits: list[FeatureBenefit]) -> list[dict[str, Any]]:
    return [asdict(b) for b in benefits]
