"""A simpler model is not better (ML Test Score, Model 5).

The model is compared, on the held-out rows its quality gate uses, with two simpler models trained on
the same training rows: a linear regression on the raw features and the training mean. The model passes
when its RMSE is not worse than the best simpler model's beyond ``tolerance`` (relative).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression

from mlship.model import data, features, training


@dataclass(frozen=True)
class BaselineComparison:
    model_rmse: float
    simpler_rmse: dict[str, float]
    tolerance: float
    n_test: int

    @property
    def best_simpler(self) -> tuple[str, float]:
        return min(self.simpler_rmse.items(), key=lambda kv: kv[1])

    @property
    def limit(self) -> float:
        return round(self.best_simpler[1] * (1 + self.tolerance), 4)

    @property
    def passed(self) -> bool:
        return self.model_rmse <= self.limit

    def as_record(self) -> dict[str, Any]:
        name, rmse = self.best_simpler
        return {
            "model_rmse": self.model_rmse,
            "simpler_rmse": self.simpler_rmse,
            "best_simpler": name,
            "advantage": round(1 - self.model_rmse / rmse, 4),
            "tolerance": self.tolerance,
            "limit": self.limit,
            "n_test": self.n_test,
            "passed": self.passed,
        }


def simpler_models() -> dict[str, Any]:
    return {"linear regression": LinearRegression(), "training mean": DummyRegressor(strategy="mean")}


def compare(
    estimator: Any, feature_version: str, *, seed: int, test_size: float, tolerance: float
) -> BaselineComparison:
    """Held-out RMSE of ``estimator`` (fitted on ``feature_version`` features) against simpler models."""
    split = data.split(data.load_frame(), seed=seed, test_size=test_size)
    x_test, kept = features.transform_for_training(split.x_test, feature_version)
    y_test = split.y_test[kept]
    model_rmse = training.evaluate(y_test, estimator.predict(x_test))["rmse"]
    raw_train = features.transform(split.x_train, "v1")
    raw_test = features.transform(split.x_test, "v1")[kept]
    simpler = {}
    for name, model in simpler_models().items():
        model.fit(raw_train, split.y_train)
        simpler[name] = training.evaluate(y_test, np.asarray(model.predict(raw_test)))["rmse"]
    return BaselineComparison(
        model_rmse=model_rmse, simpler_rmse=simpler, tolerance=tolerance, n_test=int(kept.sum())
    )
