"""A simpler model is not better (ML Test Score, Model 5).

Two simpler models - a linear regression on the raw features and the training mean - are compared with
the model twice, and neither comparison has a tolerance: the model passes only if no simpler model is
better, on either.

* **held-out**: the fitted model against the simpler models fitted on the same training rows, on the
  held-out rows its quality gate uses. This judges the artifact that would serve (a model trained on
  corrupted labels fails here).
* **cross-validated**: the model's recipe (``sklearn.base.clone``: its algorithm and hyperparameters,
  refitted) against the simpler models on the same repeated K-fold splits of the training rows. A single
  held-out split of a few hundred rows can favour either model by luck; the mean over
  ``n_splits x n_repeats`` paired folds does not. The paired difference and its standard error are
  recorded so a reader sees how close the call was. Label processing outside the estimator (a unit bug in
  the labels, say) is not part of a clone: the held-out comparison is the one that sees it.

Cross-validation refits the recipe ``n_splits x n_repeats`` times, so it runs only when the held-out
comparison passed (otherwise the verdict is already "worse than a simpler model").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import RepeatedKFold

from mlship.model import data, features, training

CV_SPLITS = 5
CV_REPEATS = 2


@dataclass(frozen=True)
class CrossValidation:
    """Mean RMSE over the same folds for the recipe and each simpler model."""

    model_rmse: float
    simpler_rmse: dict[str, float]
    folds: int
    # Per fold: model RMSE - best simpler model's RMSE (negative: the model is better on that fold).
    differences: list[float] = field(default_factory=list)

    @property
    def best_simpler(self) -> tuple[str, float]:
        return min(self.simpler_rmse.items(), key=lambda kv: kv[1])

    @property
    def passed(self) -> bool:
        return self.model_rmse <= self.best_simpler[1]

    def as_record(self) -> dict[str, Any]:
        diffs = np.asarray(self.differences)
        name, _ = self.best_simpler
        return {
            "model_rmse": self.model_rmse,
            "simpler_rmse": self.simpler_rmse,
            "best_simpler": name,
            "folds": self.folds,
            "mean_difference": round(float(diffs.mean()), 4),
            "difference_se": round(float(diffs.std(ddof=1) / np.sqrt(len(diffs))), 4),
            "model_better_folds": int((diffs < 0).sum()),
            "passed": self.passed,
        }


@dataclass(frozen=True)
class BaselineComparison:
    model_rmse: float  # held-out
    simpler_rmse: dict[str, float]  # held-out
    n_test: int
    cv: CrossValidation | None  # None: not run, the held-out comparison already failed

    @property
    def best_simpler(self) -> tuple[str, float]:
        return min(self.simpler_rmse.items(), key=lambda kv: kv[1])

    @property
    def heldout_passed(self) -> bool:
        return self.model_rmse <= self.best_simpler[1]

    @property
    def passed(self) -> bool:
        return self.heldout_passed and self.cv is not None and self.cv.passed

    def as_record(self) -> dict[str, Any]:
        name, rmse = self.best_simpler
        return {
            "model_rmse": self.model_rmse,
            "simpler_rmse": self.simpler_rmse,
            "best_simpler": name,
            "advantage": round(1 - self.model_rmse / rmse, 4),
            "tolerance": 0.0,
            "n_test": self.n_test,
            "heldout_passed": self.heldout_passed,
            "cross_validation": self.cv.as_record() if self.cv is not None else None,
            "passed": self.passed,
        }

    def describe(self) -> str:
        name, rmse = self.best_simpler
        text = f"held-out {self.model_rmse:.2f} vs {name} {rmse:.2f}"
        if self.cv is None:
            return text + " (cross-validation not run: already worse on held-out rows)"
        cv_name, cv_rmse = self.cv.best_simpler
        return text + f"; {self.cv.folds}-fold CV {self.cv.model_rmse:.2f} vs {cv_name} {cv_rmse:.2f}"


def simpler_models() -> dict[str, Any]:
    return {"linear regression": LinearRegression(), "training mean": DummyRegressor(strategy="mean")}


def _rmse(y: np.ndarray, pred: Any) -> float:
    return training.evaluate(y, np.asarray(pred))["rmse"]


def cross_validate(
    estimator: Any,
    x_model: np.ndarray,
    x_raw: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    n_splits: int = CV_SPLITS,
    n_repeats: int = CV_REPEATS,
) -> CrossValidation:
    """The recipe of ``estimator`` (on ``x_model``) and the simpler models (on ``x_raw``), same folds."""
    folds = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    model_scores: list[float] = []
    simpler_scores: dict[str, list[float]] = {name: [] for name in simpler_models()}
    for train, test in folds.split(x_model):
        model_scores.append(
            _rmse(y[test], clone(estimator).fit(x_model[train], y[train]).predict(x_model[test]))
        )
        for name, simple in simpler_models().items():
            simpler_scores[name].append(
                _rmse(y[test], simple.fit(x_raw[train], y[train]).predict(x_raw[test]))
            )
    best = min(simpler_scores, key=lambda n: float(np.mean(simpler_scores[n])))
    return CrossValidation(
        model_rmse=round(float(np.mean(model_scores)), 4),
        simpler_rmse={n: round(float(np.mean(s)), 4) for n, s in simpler_scores.items()},
        folds=len(model_scores),
        differences=[round(m - s, 4) for m, s in zip(model_scores, simpler_scores[best], strict=True)],
    )


def compare(
    estimator: Any,
    feature_version: str,
    *,
    seed: int,
    test_size: float,
    n_splits: int = CV_SPLITS,
    n_repeats: int = CV_REPEATS,
) -> BaselineComparison:
    """``estimator`` (fitted on ``feature_version`` features) against simpler models, held-out and CV."""
    split = data.split(data.load_frame(), seed=seed, test_size=test_size)
    x_test, kept_test = features.transform_for_training(split.x_test, feature_version)
    y_test = split.y_test[kept_test]
    model_rmse = _rmse(y_test, estimator.predict(x_test))
    raw_train = features.transform(split.x_train, "v1")
    raw_test = features.transform(split.x_test, "v1")[kept_test]
    simpler = {
        name: _rmse(y_test, model.fit(raw_train, split.y_train).predict(raw_test))
        for name, model in simpler_models().items()
    }
    comparison = BaselineComparison(
        model_rmse=model_rmse, simpler_rmse=simpler, n_test=int(kept_test.sum()), cv=None
    )
    if not comparison.heldout_passed:
        return comparison
    x_train, kept_train = features.transform_for_training(split.x_train, feature_version)
    cv = cross_validate(
        estimator,
        x_train,
        raw_train[kept_train],
        split.y_train[kept_train],
        seed=seed,
        n_splits=n_splits,
        n_repeats=n_repeats,
    )
    return BaselineComparison(model_rmse=model_rmse, simpler_rmse=simpler, n_test=comparison.n_test, cv=cv)
