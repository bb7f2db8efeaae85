"""Train the demo model and its release variants, reproducibly, and register them in the model store.

Variants are real training or feature-code choices, never switches in the serving path:

* ``baseline``  - gradient boosting, hyperparameters chosen by a recorded grid search (the first stable).
  The search includes where boosting starts: from the training mean (scikit-learn's default) or from a
  linear regression fitted on the same rows. On this dataset a linear regression is as good as boosting
  from the mean or better under cross-validation (ML Test Score, Model 5, ``checks/baseline.py``);
  boosting from the linear fit lets the trees add only what the linear model misses.
* ``candidate`` - the same recipe retrained with another seed: a good new version.
* ``slow``      - a 500-tree random forest: as accurate, genuinely much slower to predict.
* ``shifted``   - trained on labels corrupted by a unit bug (x1.5): its predictions shift upwards.
* ``buggy``     - feature code ``v2``, whose BMI-class lookup raises for BMI >= 30 (see features.py).
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold

from mlship import __version__
from mlship.model import approval, data, features
from mlship.model.schema import Schema

VARIANTS = ("baseline", "candidate", "slow", "shifted", "buggy")
# Recorded values are JSON (they are stored with the model); ``INITS`` maps the ``init`` labels to the
# estimators scikit-learn takes (None: its default, the training mean).
INITS: dict[str, Any] = {"training mean": None, "linear regression": LinearRegression}
SEARCH_GRID: dict[str, list[Any]] = {
    "init": list(INITS),
    "n_estimators": [100, 200],
    "max_depth": [2, 3],
    "learning_rate": [0.01, 0.05],
}
LABEL_CORRUPTION_FACTOR = 1.5
AGE_BANDS = ((0, 40, "<40"), (40, 60, "40-59"), (60, 200, "60+"))


@dataclass(frozen=True)
class TrainedModel:
    """Everything a training run produces, before it is registered."""

    variant: str
    estimator: Any
    model_bytes: bytes
    schema: Schema
    metadata: dict[str, Any]

    @property
    def version(self) -> str:
        """Content-derived version: the same data, seed and code give the same version."""
        import hashlib

        return hashlib.sha256(self.model_bytes).hexdigest()[:12]


def code_version() -> str:
    """The git commit of the training code (``+dirty`` with local changes), else the package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return f"mlship-{__version__}"
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else f"mlship-{__version__}"


def serialize(estimator: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, compress=0)
    return buffer.getvalue()


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "rmse": round(float(root_mean_squared_error(y_true, y_pred)), 4),
        "mae": round(float(mean_absolute_error(y_true, y_pred)), 4),
        "r2": round(float(r2_score(y_true, y_pred)), 4),
    }


def slices(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks of the evaluation slices (inclusion checks): by sex and by age band."""
    masks = {f"sex={v}": (frame["sex"] == v).to_numpy() for v in sorted(frame["sex"].unique())}
    for lo, hi, label in AGE_BANDS:
        masks[f"age={label}"] = ((frame["age"] >= lo) & (frame["age"] < hi)).to_numpy()
    return masks


def slice_metrics(frame: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for name, mask in slices(frame).items():
        if mask.sum() >= 5:
            out[name] = {**evaluate(y_true[mask], y_pred[mask]), "n": int(mask.sum())}
    return out


def estimator_params(recorded: dict[str, Any]) -> dict[str, Any]:
    """Recorded (JSON) hyperparameters -> scikit-learn parameters (``init`` label -> estimator)."""
    params = dict(recorded)
    if "init" in params:
        init = INITS[params["init"]]
        params["init"] = None if init is None else init()
    return params


def recorded_params(estimator: Any, keys: Any) -> dict[str, Any]:
    """The fitted estimator's parameters named by ``keys``, as the search records them."""
    params = estimator.get_params()
    out = {k: params[k] for k in sorted(keys)}
    if "init" in out:
        out["init"] = next(
            label
            for label, cls in INITS.items()
            if (cls is None and out["init"] is None) or (cls is not None and isinstance(out["init"], cls))
        )
    return out


def _search(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Recorded hyperparameter search: every candidate with its cross-validated RMSE."""
    param_grid = {
        key: [estimator_params({key: v})[key] for v in values] for key, values in SEARCH_GRID.items()
    }
    grid = GridSearchCV(
        GradientBoostingRegressor(subsample=0.8, random_state=seed),
        param_grid,
        scoring="neg_root_mean_squared_error",
        cv=KFold(n_splits=5, shuffle=True, random_state=seed),
        n_jobs=1,
    )
    grid.fit(x, y)
    template = GradientBoostingRegressor()
    results = [
        {
            "params": recorded_params(template.set_params(**params), SEARCH_GRID),
            "cv_rmse": round(float(-score), 4),
        }
        for params, score in zip(grid.cv_results_["params"], grid.cv_results_["mean_test_score"], strict=True)
    ]
    return recorded_params(template.set_params(**grid.best_params_), SEARCH_GRID), results


def build_estimator(variant: str, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[Any, dict[str, Any]]:
    """Fit the estimator of ``variant``; returns it and the training facts worth recording."""
    facts: dict[str, Any] = {}
    if variant == "slow":
        est = RandomForestRegressor(n_estimators=500, min_samples_leaf=3, random_state=seed, n_jobs=1)
        est.fit(x, y)
        facts["hyperparameters"] = {"n_estimators": 500, "min_samples_leaf": 3}
        return est, facts
    best, results = _search(x, y, seed)
    est = GradientBoostingRegressor(subsample=0.8, random_state=seed, **estimator_params(best))
    est.fit(x, y)
    facts["hyperparameters"] = best
    facts["search"] = {"grid": SEARCH_GRID, "results": results, "scoring": "5-fold CV RMSE"}
    return est, facts


def train(variant: str = "baseline", *, seed: int = 42, test_size: float = 0.2, name: str) -> TrainedModel:
    """Train ``variant`` on the bundled diabetes data; deterministic for a given seed."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {list(VARIANTS)}")
    frame = data.load_frame()
    split = data.split(frame, seed=seed, test_size=test_size)
    schema = Schema.derive(split.train, dataset=data.DATASET_NAME, data_hash=data.data_hash(frame))
    feature_version = "v2" if variant == "buggy" else features.LATEST
    fit_seed = seed + 1 if variant == "candidate" else seed
    x_train, kept = features.transform_for_training(split.x_train, feature_version)
    y_train = split.y_train[kept]
    if variant == "shifted":
        y_train = y_train * LABEL_CORRUPTION_FACTOR
    estimator, facts = build_estimator(variant, x_train, y_train, fit_seed)

    x_test, kept_test = features.transform_for_training(split.x_test, feature_version)
    y_pred = estimator.predict(x_test)
    y_test = split.y_test[kept_test]
    train_pred = estimator.predict(x_train)
    reference = [round(float((train_pred <= le).mean()), 6) for le in schema.target.buckets]
    metadata = {
        "variant": variant,
        "algorithm": type(estimator).__name__,
        "feature_version": feature_version,
        "feature_names": features.OUTPUT_NAMES[feature_version],
        "seed": fit_seed,
        "split_seed": seed,
        "test_size": test_size,
        "dataset": data.DATASET_NAME,
        "data_hash": schema.data_hash,
        "code_version": code_version(),
        # Who trained it: a spec review by the same person is refused (mlship/model/approval.py).
        "trained_by": approval.trainer_identity(Path(__file__).resolve().parents[2]),
        "sklearn_version": sklearn.__version__,
        "n_train": int(kept.sum()),
        "n_test": int(kept_test.sum()),
        "rows_dropped": int((~kept).sum()),
        "metrics": evaluate(y_test, y_pred),
        "slice_metrics": slice_metrics(split.x_test[kept_test], y_test, y_pred),
        "prediction_reference_share": reference,
        **facts,
    }
    return TrainedModel(
        variant=variant,
        estimator=estimator,
        model_bytes=serialize(estimator),
        schema=schema,
        metadata=metadata,
    )
