"""A simpler model is not better (ML Test Score, Model 5): on the held-out rows of the quality gate and in
repeated K-fold cross-validation of the recipe, no simpler model (linear regression, training mean) beats
the served model - with no tolerance either way. The comparison is the quality gate's, stored with each
model; these tests read it, record it as the figure `simpler_model.json` and check that it can fail."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression

from mlship.model import data, features
from mlship.model.checks import baseline

CHECK = "not worse than a simpler model"


def comparison_of(record) -> dict:
    return next(c for c in record.gate["checks"] if c["name"] == CHECK)


def test_the_served_model_beats_every_simpler_model_held_out_and_cross_validated(models, record_figure):
    record = models["baseline"]
    check = comparison_of(record)
    figures = check["figures"]
    cv = figures["cross_validation"]
    passed = bool(check["passed"] and figures["heldout_passed"] and cv and cv["passed"])
    record_figure(
        "simpler_model",
        {"model": record.tag, **figures},
        verdict="passed" if passed else "failed",
    )
    assert figures["tolerance"] == 0.0
    assert set(figures["simpler_rmse"]) == {"linear regression", "training mean"}
    assert cv is not None and cv["folds"] == baseline.CV_SPLITS * baseline.CV_REPEATS
    assert figures["model_rmse"] <= min(figures["simpler_rmse"].values())
    assert cv["model_rmse"] <= min(cv["simpler_rmse"].values()), cv
    assert passed


def test_the_retrained_candidate_is_not_worse_than_a_simpler_model_either(models):
    check = comparison_of(models["candidate"])
    assert check["passed"], check["detail"]


def test_a_model_trained_on_corrupted_labels_is_worse_than_a_linear_regression(models):
    check = comparison_of(models["shifted"])
    assert not check["passed"]
    assert check["figures"]["best_simpler"] == "linear regression"
    assert check["figures"]["cross_validation"] is None, "already worse on held-out rows"


class _LinearPlusNoise(BaseEstimator, RegressorMixin):
    """A linear regression whose predictions carry fixed noise: a recipe worse than the simpler model."""

    def __init__(self, scale: float = 3.0) -> None:
        self.scale = scale

    def fit(self, x, y):
        self.inner_ = LinearRegression().fit(x, y)
        return self

    def predict(self, x):
        rng = np.random.default_rng(len(x))
        return self.inner_.predict(x) + rng.normal(0.0, self.scale, len(x))


def test_cross_validation_catches_a_recipe_slightly_worse_than_the_simpler_model():
    """No tolerance: a recipe a few percent worse than a linear regression fails, fold for fold."""
    split = data.split(data.load_frame(), seed=42, test_size=0.2)
    x = features.transform(split.x_train, "v1")
    cv = baseline.cross_validate(_LinearPlusNoise(), x, x, split.y_train, seed=42)
    assert not cv.passed
    assert cv.model_rmse < cv.simpler_rmse["linear regression"] * 1.05, "within the old 5% tolerance"
    assert cv.best_simpler[0] == "linear regression" and cv.folds == 10


def test_the_exact_simpler_model_passes_no_tolerance_against_the_modeller():
    """A tie is not a loss: the linear regression itself is not worse than a linear regression."""
    split = data.split(data.load_frame(), seed=42, test_size=0.2)
    x = features.transform(split.x_train, "v1")
    cv = baseline.cross_validate(LinearRegression(), x, x, split.y_train, seed=42)
    assert cv.passed and cv.as_record()["mean_difference"] == 0.0
