"""No feature's cost is too much (ML Test Score, Data 3): per-feature work and memory of every prediction,
within budget, recorded next to each feature's benefit."""

from __future__ import annotations

import pytest

from mlship.model import features
from mlship.model.checks import feature_cost, importance

NAMES = list(features.RAW_FEATURES)


def test_every_feature_of_the_served_model_is_within_budget(models, heldout, record_figure):
    _, x, y = heldout
    estimator = models["baseline"].load_estimator()
    costs = feature_cost.feature_costs(estimator, x, NAMES)
    benefits = {b.feature: b for b in importance.feature_benefits(estimator, x, y, NAMES)}
    record_figure(
        "feature_cost",
        {
            "model": models["baseline"].tag,
            "budget": {
                "visits_per_prediction": feature_cost.MAX_VISITS_PER_FEATURE,
                "model_bytes": feature_cost.MAX_MODEL_BYTES_PER_FEATURE,
            },
            "features": [
                {**c, "benefit_relative": benefits[c["feature"]].relative}
                for c in feature_cost.as_records(costs)
            ],
        },
        verdict="failed" if any(c.over_budget for c in costs) else "passed",
    )
    over = {c.feature: c.over_budget for c in costs if c.over_budget}
    assert not over, f"features that cost too much: {over}"
    assert sum(c.work_share for c in costs) == pytest.approx(1.0, abs=1e-3)
    assert all(c.visits_per_prediction > 0 for c in costs if c.feature in {"bmi", "s5"})


def test_the_500_tree_forest_has_features_over_budget(models, heldout):
    _, x, _ = heldout
    costs = feature_cost.feature_costs(models["slow"].load_estimator(), x, NAMES)
    over = [c for c in costs if c.over_budget]
    assert over, "a model 20x heavier per prediction must show features over budget"
    assert any("node visits per prediction" in reason for c in over for reason in c.over_budget)


def test_cost_is_measured_for_tree_models_only(heldout):
    from sklearn.linear_model import LinearRegression

    _, x, y = heldout
    with pytest.raises(TypeError, match="LinearRegression is not a fitted scikit-learn tree model"):
        feature_cost.feature_costs(LinearRegression().fit(x, y), x, NAMES)
