"""Feature code: the one place where raw inputs become the model's input matrix.

Training and serving call the same function (``transform``), so there is no second implementation to
drift apart. Each model records the ``feature_version`` it was trained with and the server computes
features with that version.

Version ``v2`` ships a real bug on purpose, for the demo's bad release: its BMI-class lookup table
uses the WHO class names of an older spec ("obese_i", "obese_ii", ...) while ``who_bmi_class`` returns
"obese", so every row with BMI >= 30 (about a fifth of patients, well inside the valid range) raises.
Training tolerates row failures (it drops them and records how many), which is exactly how such a bug
slips through to serving.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

RAW_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


class FeatureError(ValueError):
    """A row whose features cannot be computed."""


def who_bmi_class(bmi: float) -> str:
    if bmi < 18.5:
        return "underweight"
    if bmi < 25.0:
        return "normal"
    if bmi < 30.0:
        return "overweight"
    return "obese"


# Relative risk by class; keys from an older spec (the bug described in the module docstring).
BMI_CLASS_RISK = {"underweight": 0.9, "normal": 1.0, "overweight": 1.3, "obese_i": 1.8, "obese_ii": 2.4}


_BMI, _S1, _S3 = (RAW_FEATURES.index(n) for n in ("bmi", "s1", "s3"))


def _v1(raw: np.ndarray) -> np.ndarray:
    return raw


def _v2(raw: np.ndarray) -> np.ndarray:
    risk = np.array([BMI_CLASS_RISK[who_bmi_class(b)] for b in raw[:, _BMI].tolist()], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # x/0 -> inf/nan, refused below as in pandas
        tc_hdl = raw[:, _S1] / raw[:, _S3]
    return np.column_stack([raw, risk, tc_hdl])


# Each transform takes the raw features as a float64 matrix with columns in RAW_FEATURES order: the
# server builds that matrix straight from a validated request (no DataFrame for one row), training
# from its DataFrame (``transform``); both then run this same code.
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"v1": _v1, "v2": _v2}
OUTPUT_NAMES = {"v1": list(RAW_FEATURES), "v2": [*RAW_FEATURES, "bmi_class_risk", "tc_hdl_ratio"]}
LATEST = "v1"


def transform(frame: pd.DataFrame, version: str) -> np.ndarray:
    """Model input matrix for ``frame`` (raw feature columns) with feature code ``version``.

    Raises FeatureError when a row cannot be computed (the server answers 500: a server-side bug).
    """
    if version not in TRANSFORMS:
        raise ValueError(f"unknown feature version {version!r}; known: {sorted(TRANSFORMS)}")
    try:
        raw = frame.loc[:, list(RAW_FEATURES)].to_numpy(dtype=np.float64)
    except KeyError as exc:
        raise FeatureError(f"feature code {version} failed: {exc!r}") from exc
    return transform_matrix(raw, version)


def transform_matrix(raw: np.ndarray, version: str) -> np.ndarray:
    """``transform`` for raw features already in a float64 matrix (columns in RAW_FEATURES order)."""
    try:
        fn = TRANSFORMS[version]
    except KeyError:
        raise ValueError(f"unknown feature version {version!r}; known: {sorted(TRANSFORMS)}") from None
    try:
        matrix = fn(raw)
    except (KeyError, ZeroDivisionError, ValueError) as exc:
        raise FeatureError(f"feature code {version} failed: {exc!r}") from exc
    if not np.isfinite(matrix).all():
        raise FeatureError(f"feature code {version} produced non-finite values")
    return matrix


def transform_for_training(frame: pd.DataFrame, version: str) -> tuple[np.ndarray, np.ndarray]:
    """Like ``transform`` but row by row, dropping rows that fail.

    Returns (matrix of kept rows, boolean mask of kept rows). Mirrors common training pipelines that
    skip malformed rows; the number dropped is recorded in the model's metadata.
    """
    try:
        return transform(frame, version), np.ones(len(frame), dtype=bool)
    except FeatureError:
        rows, kept = [], np.zeros(len(frame), dtype=bool)
        for i in range(len(frame)):
            try:
                rows.append(transform(frame.iloc[[i]], version)[0])
                kept[i] = True
            except FeatureError:
                continue
        return np.array(rows), kept
