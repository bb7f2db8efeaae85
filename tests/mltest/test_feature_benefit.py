"""All features are beneficial (ML Test Score, Data 2): permutation importance on held-out rows.

The served model may carry no harmful feature (the model measurably better with the column shuffled);
features without measurable benefit are recorded as candidates for removal, with their figures.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlship.model import features
from mlship.model.checks import importance

STRONG = {"bmi", "s5"}  # the two features every study of this dataset finds predictive


def test_no_feature_of_the_served_model_is_harmful_and_the_strong_ones_help(models, heldout, record_figure):
    _, x, y = heldout
    benefits = importance.feature_benefits(
        models["baseline"].load_estimator(), x, y, list(features.RAW_FEATURES)
    )
    record_figure(
        "feature_benefit",
        {"model": models["baseline"].tag, "features": importance.as_records(benefits)},
    )
    verdicts = {b.feature: b.verdict for b in benefits}
    harmful = [f for f, v in verdicts.items() if v == importance.HARMFUL]
    assert not harmful, f"features that make the model worse on held-out data: {harmful}"
    assert all(verdicts[f] == importance.BENEFICIAL for f in STRONG), verdicts


@pytest.mark.parametrize("draw", range(5))
def test_a_pure_noise_feature_is_not_found_beneficial(trained, heldout, split, draw):
    from sklearn.base import clone

    rng = np.random.default_rng(draw)
    x_train = features.transform(split.x_train, "v1")
    noisy_train = np.column_stack([x_train, rng.normal(size=len(x_train))])
    _, x_test, y_test = heldout
    noisy_test = np.column_stack([x_test, rng.normal(size=len(x_test))])
    model = clone(trained["baseline"].estimator).fit(noisy_train, split.y_train)
    benefits = importance.feature_benefits(model, noisy_test, y_test, [*features.RAW_FEATURES, "noise"])
    assert {b.feature: b.verdict for b in benefits}["noise"] != importance.BENEFICIAL


def test_a_feature_that_misleads_on_new_data_is_harmful(trained, heldout, split):
    """A column that tracks the label in training and whose relation flips at serving time."""
    from sklearn.base import clone

    rng = np.random.default_rng(3)
    x_train = features.transform(split.x_train, "v1")
    leak_train = np.column_stack([x_train, split.y_train + rng.normal(0, 5, len(x_train))])
    _, x_test, y_test = heldout
    leak_test = np.column_stack([x_test, y_test.max() + y_test.min() - y_test])
    model = clone(trained["baseline"].estimator).fit(leak_train, split.y_train)
    benefits = importance.feature_benefits(model, leak_test, y_test, [*features.RAW_FEATURES, "leak"])
    assert {b.feature: b.verdict for b in benefits}["leak"] == importance.HARMFUL


def test_feature_names_must_match_the_columns(models, heldout):
    _, x, y = heldout
    with pytest.raises(ValueError, match="10 columns but 2 feature names"):
        importance.feature_benefits(models["baseline"].load_estimator(), x, y, ["a", "b"])
