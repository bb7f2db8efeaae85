"""A simpler model is not better (ML Test Score, Model 5): on the held-out rows of the quality gate, every
served-quality model beats a linear regression and the training mean (within the gate's tolerance)."""

from __future__ import annotations

import pytest

from mlship.config import GateConfig
from mlship.model.checks import baseline

TOLERANCE = GateConfig().metric_tolerance


@pytest.mark.parametrize("variant", ["baseline", "candidate", "slow"])
def test_the_model_is_not_worse_than_a_simpler_one(models, variant, record_figure):
    record = models[variant]
    comparison = baseline.compare(
        record.load_estimator(),
        record.metadata["feature_version"],
        seed=42,
        test_size=0.2,
        tolerance=TOLERANCE,
    )
    record_figure(f"simpler_model_{variant}", {"model": record.tag, **comparison.as_record()})
    assert comparison.passed, comparison.as_record()
    assert comparison.simpler_rmse["training mean"] > 1.2 * comparison.model_rmse


def test_a_model_trained_on_corrupted_labels_is_worse_than_a_linear_regression(models):
    record = models["shifted"]
    comparison = baseline.compare(
        record.load_estimator(),
        record.metadata["feature_version"],
        seed=42,
        test_size=0.2,
        tolerance=TOLERANCE,
    )
    assert not comparison.passed
    assert comparison.best_simpler[0] == "linear regression"
