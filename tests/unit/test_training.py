"""Training is reproducible and records everything the rest of mlship relies on."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mlship.model import data, features, training


@pytest.fixture(scope="module")
def baseline(trained):
    return trained["baseline"]


def _nodes(estimator) -> int:
    trees = (
        estimator.estimators_.ravel() if hasattr(estimator.estimators_, "ravel") else estimator.estimators_
    )
    return sum(t.tree_.node_count for t in trees)


def test_same_data_and_seed_give_a_byte_identical_model(baseline):
    again = training.train("baseline", seed=42, test_size=0.2, name="m")
    assert hashlib.sha256(again.model_bytes).digest() == hashlib.sha256(baseline.model_bytes).digest()
    assert again.version == baseline.version


def test_another_seed_gives_another_model(baseline, trained):
    assert trained["candidate"].metadata["seed"] != baseline.metadata["seed"]
    assert trained["candidate"].version != baseline.version


def test_metadata_records_metrics_data_code_and_search(baseline):
    meta = baseline.metadata
    assert set(meta["metrics"]) == {"rmse", "mae", "r2"}
    assert 0.3 < meta["metrics"]["r2"] < 0.7, "a real model on real data, not a constant"
    assert meta["data_hash"] == data.data_hash(data.load_frame())
    assert meta["code_version"]
    assert meta["feature_version"] == "v1"
    assert meta["n_train"] + meta["n_test"] == len(data.load_frame())
    assert {"sex=1", "sex=2", "age=<40", "age=40-59", "age=60+"} <= set(meta["slice_metrics"])


def test_hyperparameters_come_from_the_recorded_search(baseline):
    search = baseline.metadata["search"]
    assert len(search["results"]) == np.prod([len(v) for v in training.SEARCH_GRID.values()])
    best = min(search["results"], key=lambda r: r["cv_rmse"])
    assert best["params"] == baseline.metadata["hyperparameters"]


def test_prediction_reference_is_a_cumulative_distribution_on_the_target_buckets(baseline):
    shares = baseline.metadata["prediction_reference_share"]
    assert len(shares) == len(baseline.schema.target.buckets)
    assert shares == sorted(shares)
    assert shares[0] >= 0.0 and shares[-1] <= 1.0


def test_variants_are_real_training_choices(baseline, trained):
    split = data.split(data.load_frame(), seed=42, test_size=0.2)
    x_test = features.transform(split.x_test, "v1")
    shifted = trained["shifted"]
    assert shifted.estimator.predict(x_test).mean() > 1.3 * baseline.estimator.predict(x_test).mean()
    slow = trained["slow"]
    assert slow.metadata["algorithm"] == "RandomForestRegressor"
    assert _nodes(slow.estimator) > 20 * _nodes(baseline.estimator), "much more work per prediction"
    buggy = trained["buggy"]
    assert buggy.metadata["feature_version"] == "v2"
    assert buggy.metadata["rows_dropped"] == int((split.x_train["bmi"] >= 30).sum())


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        training.train("fastest", name="m")
