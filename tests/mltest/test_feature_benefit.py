"""All features are beneficial (ML Test Score, Data 2): leave-one-feature-out on the training rows and
permutation importance on held-out rows.

The served model may carry no harmful feature (a defect: the test fails). A feature without measurable
benefit under leave-one-feature-out does not fail the suite - it is the property the paper asks about,
not a bug - but it is flagged: the figure `feature_benefit.json` names it and its verdict is "failed",
so `mlship score` does not count Data 2 until the feature earns its place or is removed.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlship.model import features
from mlship.model.checks import importance

STRONG = {"bmi", "s5"}  # the two features every study of this dataset finds predictive


def test_every_feature_is_measured_harmful_ones_fail_and_those_without_benefit_are_flagged(
    models, heldout, split, record_figure
):
    record = models["baseline"]
    estimator = record.load_estimator()
    names = list(features.RAW_FEATURES)
    _, x, y = heldout
    permuted = {b.feature: b for b in importance.feature_benefits(estimator, x, y, names)}
    x_train = features.transform(split.x_train, "v1")
    dropped = importance.drop_column_benefits(estimator, x_train, split.y_train, names, seed=42)
    flagged = [b.feature for b in dropped if b.verdict != importance.BENEFICIAL]
    harmful = sorted(
        {b.feature for b in dropped if b.verdict == importance.HARMFUL}
        | {f for f, b in permuted.items() if b.verdict == importance.HARMFUL}
    )
    record_figure(
        "feature_benefit",
        {
            "model": record.tag,
            "method": "leave-one-feature-out, 5-fold x 2 CV of the recipe on the training rows; "
            "permutation importance on held-out rows for harm",
            "flagged": flagged,
            "harmful": harmful,
            "leave_one_out": importance.as_records(dropped),
            "permutation": importance.as_records(list(permuted.values())),
        },
        verdict="passed" if not flagged and not harmful else "failed",
    )
    assert not harmful, f"features that make the model worse: {harmful}"
    assert all({b.feature: b.verdict for b in dropped}[f] == importance.BENEFICIAL for f in STRONG), dropped
    assert [b.feature for b in dropped] == names


def test_leave_one_feature_out_flags_a_pure_noise_column(trained, split):
    rng = np.random.default_rng(0)
    x_train = features.transform(split.x_train, "v1")
    noisy = np.column_stack([x_train, rng.normal(size=len(x_train))])
    benefits = importance.drop_column_benefits(
        trained["baseline"].estimator,
        noisy,
        split.y_train,
        [*features.RAW_FEATURES, "noise"],
        seed=42,
        columns=["noise", "bmi"],
    )
    verdicts = {b.feature: b.verdict for b in benefits}
    assert verdicts == {"bmi": importance.BENEFICIAL, "noise": importance.NO_BENEFIT}


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
