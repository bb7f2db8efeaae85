"""Feature code: one implementation for training and serving; v2 carries a real bug for the demo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlship.model import data, features


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return data.load_frame().drop(columns=[data.TARGET])


def test_v1_is_the_raw_features_in_a_fixed_order(frame):
    matrix = features.transform(frame, "v1")
    assert matrix.shape == (len(frame), 10)
    assert np.array_equal(matrix[:, 2], frame["bmi"].to_numpy())
    shuffled = frame[list(reversed(frame.columns))]
    assert np.array_equal(features.transform(shuffled, "v1"), matrix), (
        "column order of the input does not matter"
    )


def test_v2_raises_for_obese_patients_only(frame):
    healthy = frame[frame["bmi"] < 30]
    obese = frame[frame["bmi"] >= 30]
    assert len(obese) > 0.15 * len(frame), "the bug must hit a real share of the valid range"
    assert features.transform(healthy, "v2").shape == (len(healthy), 12)
    with pytest.raises(features.FeatureError, match="obese"):
        features.transform(obese.iloc[[0]], "v2")


def test_training_drops_exactly_the_rows_that_fail(frame):
    matrix, kept = features.transform_for_training(frame, "v2")
    assert np.array_equal(kept, (frame["bmi"] < 30).to_numpy())
    assert matrix.shape == (kept.sum(), 12)


def test_unknown_feature_version_is_a_clear_error(frame):
    with pytest.raises(ValueError, match="unknown feature version 'v9'"):
        features.transform(frame, "v9")
