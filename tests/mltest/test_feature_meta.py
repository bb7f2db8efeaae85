"""Features adhere to meta-level requirements (ML Test Score, Data 4).

mlship's requirements for every feature a model reads: it is declared in the model's schema with a
description, a type and a valid range (so serving validates it); it is computed by the versioned feature
code (no column reaches the model any other way); and it is no copy of the label (no leakage).
"""

from __future__ import annotations

import numpy as np
import pytest

from mlship.model import data, features
from mlship.model.schema import CategoricalFeature, NumericFeature

LEAK_CORRELATION = 0.95


@pytest.mark.parametrize("variant", ["baseline", "candidate", "slow", "buggy"])
def test_every_model_input_is_declared_described_and_bounded(models, variant):
    record = models[variant]
    schema = record.schema
    version = record.metadata["feature_version"]
    assert record.metadata["feature_names"] == features.OUTPUT_NAMES[version]
    for name in features.RAW_FEATURES:
        spec = schema.feature(name)
        assert spec.description, f"{name} has no description"
        if isinstance(spec, NumericFeature):
            assert spec.minimum < spec.maximum
        else:
            assert isinstance(spec, CategoricalFeature) and spec.allowed
    assert set(schema.names) == set(features.RAW_FEATURES), "the schema declares exactly the raw inputs"
    assert data.TARGET not in schema.names


@pytest.mark.parametrize("version", sorted(features.TRANSFORMS))
def test_no_feature_is_a_copy_of_the_label(version):
    frame = data.load_frame()
    matrix, kept = features.transform_for_training(frame.drop(columns=[data.TARGET]), version)
    y = frame[data.TARGET].to_numpy()[kept]
    for name, column in zip(features.OUTPUT_NAMES[version], matrix.T, strict=True):
        corr = abs(np.corrcoef(column, y)[0, 1])
        assert corr < LEAK_CORRELATION, f"{version}:{name} correlates {corr:.2f} with the label"


@pytest.mark.parametrize("version", sorted(features.TRANSFORMS))
def test_feature_code_never_reads_the_label(version):
    frame = data.load_frame()
    x = frame.drop(columns=[data.TARGET]).iloc[:50]
    x = x[x["bmi"] < 30]  # rows every feature version can compute
    with_label = frame.iloc[x.index]
    assert np.array_equal(features.transform(x, version), features.transform(with_label, version))
    moved = with_label.assign(**{data.TARGET: with_label[data.TARGET] * 10})
    assert np.array_equal(features.transform(moved, version), features.transform(x, version))
