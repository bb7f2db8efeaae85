"""The feature schema: derived from the training data, the single source of truth for validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from mlship.model import data
from mlship.model.schema import CategoricalFeature, NumericFeature, Schema


@pytest.fixture(scope="module")
def split():
    return data.split(data.load_frame(), seed=42, test_size=0.2)


@pytest.fixture(scope="module")
def schema(split):
    return Schema.derive(split.train, dataset=data.DATASET_NAME, data_hash=data.data_hash(data.load_frame()))


def valid_row(schema: Schema) -> dict:
    return {
        f.name: (f.allowed[0] if isinstance(f, CategoricalFeature) else (f.minimum + f.maximum) / 2)
        for f in schema.features
    }


def test_every_training_value_is_valid_and_ranges_have_margin(schema, split):
    for feature in schema.features:
        column = split.train[feature.name]
        if isinstance(feature, NumericFeature):
            assert feature.minimum < column.min() or feature.minimum == 0.0
            assert feature.maximum > column.max()
            assert feature.minimum >= 0.0, "never-negative features stay non-negative"
        else:
            assert set(column.unique()) == set(feature.allowed)


def test_reference_shares_are_distributions_matching_the_bins(schema, split):
    for feature in schema.features:
        assert math.isclose(sum(feature.reference_share), 1.0, abs_tol=1e-5)
        bins = schema.bin_index(feature.name, split.train[feature.name].to_numpy())
        counts = np.bincount(bins, minlength=len(feature.reference_share)) / len(bins)
        assert np.allclose(counts, feature.reference_share, atol=1e-5)


def test_bins_follow_prometheus_le_semantics(schema):
    age = schema.feature("age")
    edge = age.bin_edges[0]
    assert schema.bin_index("age", np.array([edge]))[0] == 0, "a value equal to an edge is in the bin below"
    assert schema.bin_index("age", np.array([edge + 1e-6]))[0] == 1


def test_target_buckets_are_increasing_and_inside_the_target_range(schema):
    buckets = schema.target.buckets
    assert buckets == sorted(set(buckets))
    assert schema.target.minimum < buckets[0] < buckets[-1] < schema.target.maximum


def test_schema_round_trips_through_json(schema):
    again = Schema.from_json(schema.to_json())
    assert again == schema
    assert json.loads(schema.to_json())["features"][1]["kind"] == "categorical"


def test_request_model_accepts_a_valid_row(schema):
    model = schema.request_model()
    row = model.model_validate_json(json.dumps(valid_row(schema)))
    assert row.model_dump() == valid_row(schema)


@pytest.mark.parametrize(
    ("change", "field", "error_type"),
    [
        ({"age": 500.0}, "age", "less_than_equal"),
        ({"bmi": -1.0}, "bmi", "greater_than_equal"),
        ({"sex": 3}, "sex", "literal_error"),
        ({"bp": "high"}, "bp", "float_type"),
        ({"s1": True}, "s1", "float_type"),
        ({"unexpected": 1}, "unexpected", "extra_forbidden"),
    ],
)
def test_request_model_rejects_bad_values_naming_the_field(schema, change, field, error_type):
    model = schema.request_model()
    row = {**valid_row(schema), **change}
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(json.dumps(row))
    errors = info.value.errors()
    assert [(e["loc"][0], e["type"]) for e in errors] == [(field, error_type)]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_request_model_rejects_non_finite_numbers(schema, literal):
    model = schema.request_model()
    text = json.dumps(valid_row(schema)).replace(
        '"bmi": ' + str(valid_row(schema)["bmi"]), f'"bmi": {literal}'
    )
    assert literal in text
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(text)
    assert info.value.errors()[0]["loc"] == ("bmi",)


def test_request_model_rejects_missing_fields(schema):
    model = schema.request_model()
    row = valid_row(schema)
    del row["s6"]
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(json.dumps(row))
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("s6",), "missing")]


def test_edge_rows_cover_both_ends_of_every_range(schema):
    edges = schema.edge_rows()
    for feature in schema.features:
        values = set(edges[feature.name])
        if isinstance(feature, NumericFeature):
            assert {feature.minimum, feature.maximum} <= values
        else:
            assert set(feature.allowed) <= values
