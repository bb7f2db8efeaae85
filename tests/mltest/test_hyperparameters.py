"""All hyperparameters have been tuned (ML Test Score, Model 3): every registered model that came out of a
search serves the search's best candidate, the search covered the whole grid, and the choice matters."""

from __future__ import annotations

import itertools

import pytest

from mlship.model import training


def grid_points() -> list[dict]:
    keys = sorted(training.SEARCH_GRID)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(training.SEARCH_GRID[k] for k in keys))
    ]


@pytest.mark.parametrize("variant", ["baseline", "candidate", "shifted", "buggy"])
def test_the_served_parameters_are_the_best_of_the_recorded_search(models, variant):
    record = models[variant]
    search = record.metadata["search"]
    assert sorted(map(repr, (r["params"] for r in search["results"]))) == sorted(map(repr, grid_points()))
    best = min(search["results"], key=lambda r: r["cv_rmse"])
    assert record.metadata["hyperparameters"] == best["params"]
    assert training.recorded_params(record.load_estimator(), training.SEARCH_GRID) == best["params"], (
        "the stored estimator uses them"
    )


def test_the_search_is_worth_running(models):
    """The grid spans choices that matter: the worst candidate is clearly worse than the best."""
    results = models["baseline"].metadata["search"]["results"]
    scores = sorted(r["cv_rmse"] for r in results)
    assert scores[-1] > scores[0] * 1.02, scores


def test_a_model_without_a_search_records_its_fixed_parameters(models):
    record = models["slow"]
    assert "search" not in record.metadata
    params = record.load_estimator().get_params()
    assert {k: params[k] for k in record.metadata["hyperparameters"]} == record.metadata["hyperparameters"]
