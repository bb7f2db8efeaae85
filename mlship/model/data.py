"""The demo dataset: scikit-learn's bundled diabetes data (442 patients, 10 features, real, no download).

Loaded unscaled so features keep their clinical units (age in years, BMI in kg/m2, blood pressure in
mm Hg, six blood serum measurements) and the schema's ranges mean something to a human.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

TARGET = "target"
DATASET_NAME = "sklearn.datasets.load_diabetes(scaled=False)"
# sex is coded 1/2 in the raw data; every other column is numeric.
CATEGORICAL = ("sex",)
DESCRIPTIONS = {
    "age": "age in years",
    "sex": "sex (coded 1 or 2)",
    "bmi": "body mass index, kg/m2",
    "bp": "average blood pressure, mm Hg",
    "s1": "tc, total serum cholesterol",
    "s2": "ldl, low-density lipoproteins",
    "s3": "hdl, high-density lipoproteins",
    "s4": "tch, total cholesterol / HDL",
    "s5": "ltg, log of serum triglycerides level",
    "s6": "glu, blood sugar level",
}


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def x_train(self) -> pd.DataFrame:
        return self.train.drop(columns=[TARGET])

    @property
    def y_train(self) -> np.ndarray:
        return self.train[TARGET].to_numpy()

    @property
    def x_test(self) -> pd.DataFrame:
        return self.test.drop(columns=[TARGET])

    @property
    def y_test(self) -> np.ndarray:
        return self.test[TARGET].to_numpy()


def load_frame() -> pd.DataFrame:
    """The full dataset as a DataFrame with the feature columns and ``target``."""
    from sklearn.datasets import load_diabetes  # here: the CLI and the server start without sklearn's import

    frame = load_diabetes(scaled=False, as_frame=True).frame
    frame["sex"] = frame["sex"].astype(int)
    return frame.reset_index(drop=True)


def data_hash(frame: pd.DataFrame) -> str:
    """sha256 of the data's canonical CSV form: the same rows in the same order give the same hash."""
    return hashlib.sha256(frame.to_csv(index=False, float_format="%.10g").encode()).hexdigest()


def split(frame: pd.DataFrame, *, seed: int, test_size: float) -> Split:
    """Deterministic held-out split (same seed, same rows)."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(frame, test_size=test_size, random_state=seed)
    return Split(train=train.reset_index(drop=True), test=test.reset_index(drop=True))


def feature_names(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != TARGET]
