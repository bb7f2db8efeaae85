"""The model server answers valid requests, rejects invalid ones with 4xx naming the field (never 5xx),
exports its metrics and logs JSON without feature values."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from prometheus_client import REGISTRY, generate_latest

from mlship import names


def test_predict_one_row(client, valid_row, models):
    response = client.post("/predict", json=valid_row)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == models["baseline"].version
    assert 25 <= body["prediction"] <= 346, "a disease progression score in the range of the training targets"


def test_predict_batch_matches_single_predictions(client, valid_row):
    other = {**valid_row, "bmi": valid_row["bmi"] + 3, "sex": 2}
    batch = client.post("/predict_batch", json={"instances": [valid_row, other]})
    assert batch.status_code == 200, batch.text
    singles = [client.post("/predict", json=row).json()["prediction"] for row in (valid_row, other)]
    assert batch.json()["predictions"] == pytest.approx(singles)


@pytest.mark.parametrize(
    ("mutate", "field", "error_type"),
    [
        (lambda r: r.pop("age"), "age", "missing"),
        (lambda r: r.update(age=1000), "age", "less_than_equal"),
        (lambda r: r.update(sex=0), "sex", "literal_error"),
        (lambda r: r.update(bmi="heavy"), "bmi", "float_type"),
        (lambda r: r.update(bp=None), "bp", "float_type"),
        (lambda r: r.update(s1=[1, 2]), "s1", "float_type"),
        (lambda r: r.update(extra=1), "extra", "extra_forbidden"),
    ],
)
def test_invalid_rows_get_400_naming_the_field(client, valid_row, mutate, field, error_type):
    row = dict(valid_row)
    mutate(row)
    response = client.post("/predict", json=row)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert [(d["loc"][-1], d["type"]) for d in detail] == [(field, error_type)]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_get_400(client, valid_row, literal):
    text = json.dumps({**valid_row, "s5": 0.0}).replace('"s5": 0.0', f'"s5": {literal}')
    response = client.post("/predict", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"][-1] == "s5"


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2, 3]", b'{"age": ', b"null", b'"a string"'],
)
def test_malformed_bodies_get_4xx_never_5xx(client, body):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def test_batch_limits(client, valid_row):
    assert client.post("/predict_batch", json={"instances": []}).status_code == 400
    too_many = {"instances": [valid_row] * (names.MAX_BATCH_SIZE + 1)}
    response = client.post("/predict_batch", json=too_many)
    assert response.status_code == 400
    assert response.json()["detail"][0]["type"] == "too_long"


def test_oversized_body_is_refused_with_413(client):
    body = b'{"age": ' + b" " * (names.MAX_REQUEST_BYTES + 10) + b"50}"
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]


def test_request_id_is_echoed_or_created(client, valid_row):
    given = client.post("/predict", json=valid_row, headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    created = client.post("/predict", json=valid_row)
    assert len(created.headers["x-request-id"]) == 32
    hostile = client.post("/predict", json=valid_row, headers={"x-request-id": "a b\tc" * 50})
    assert hostile.headers["x-request-id"] != "a b\tc" * 50


def _metric(client, name: str, **labels) -> float:
    # In process there is no BentoML worker arbiter (its /metrics serves the multiprocess files of
    # `bentoml serve`): read the default registry the service's metrics live in. The served
    # /metrics endpoint is covered by tests/integration (real servers scraped by Prometheus).
    text = generate_latest(REGISTRY).decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_predictions_features_and_rejections(client, valid_row, models):
    version = models["baseline"].version
    before = _metric(client, "mlship_predictions_total", model_version=version, endpoint="/predict")
    before_rejected = _metric(client, "mlship_rejected_inputs_total", reason="less_than_equal", field="age")
    before_bins = _metric(client, "mlship_feature_bin_total", feature="bmi")
    client.post("/predict", json=valid_row)
    client.post("/predict", json={**valid_row, "age": 1000})
    assert (
        _metric(client, "mlship_predictions_total", model_version=version, endpoint="/predict") == before + 1
    )
    assert (
        _metric(client, "mlship_rejected_inputs_total", reason="less_than_equal", field="age")
        == before_rejected + 1
    )
    assert _metric(client, "mlship_feature_bin_total", feature="bmi") == before_bins + 1
    assert _metric(client, "mlship_model_info", model_version=version, feature_version="v1") == 1
    assert _metric(client, "mlship_prediction_value_count", model_version=version) >= 1
    shares = _metric(client, "mlship_feature_reference_share", model_version=version, feature="age")
    assert shares == pytest.approx(1.0, abs=1e-4)
    assert _metric(client, "mlship_model_trained_timestamp_seconds", model_version=version) > 1.7e9


def test_readiness_and_liveness(client):
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200


def test_logs_are_json_with_request_id_and_no_feature_values(service_module, client, valid_row, capfd):
    secret_bmi = 31.4159
    client.post("/predict", json={**valid_row, "bmi": secret_bmi}, headers={"x-request-id": "privacy-1"})
    client.post("/predict", json={**valid_row, "age": 999.125}, headers={"x-request-id": "privacy-2"})
    service_module.FAST.access_log.flush()  # access lines are written in batches (at most 0.5 s late)
    out = capfd.readouterr()
    text = out.out + out.err
    assert "31.4159" not in text and "999.125" not in text, "raw feature values must never be logged"
    lines = [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") in ("privacy-1", "privacy-2")]
    assert {line["status"] for line in mine} == {200, 400}
    assert all(line["model_version"] and line["level"] for line in mine)


def test_bentoml_does_not_log_rejected_values(service_module, client, valid_row, caplog):
    caplog.set_level(logging.DEBUG)
    client.post("/predict", json={**valid_row, "age": 777.5})
    assert "777.5" not in caplog.text


def test_on_prediction_hooks_see_every_served_row_and_cannot_fail_a_request(
    service_module, client, valid_row
):
    seen = []

    def hook(rid, version, role, rows, predictions):
        seen.append((rid, version, role, rows.shape, predictions.tolist()))

    def broken(*_args):
        raise RuntimeError("a hook with a bug")

    service_module.on_prediction.extend([broken, hook])
    try:
        one = client.post("/predict", json=valid_row, headers={"x-request-id": "hook-1"})
        many = client.post(
            "/predict_batch", json={"instances": [valid_row] * 3}, headers={"x-request-id": "hook-2"}
        )
    finally:
        service_module.on_prediction.remove(broken)
        service_module.on_prediction.remove(hook)
    assert one.status_code == 200 and many.status_code == 200
    version = service_module.VERSION
    assert seen == [
        ("hook-1", version, "standalone", (1, len(valid_row)), [one.json()["prediction"]]),
        ("hook-2", version, "standalone", (3, len(valid_row)), many.json()["predictions"]),
    ]


def test_a_non_finite_prediction_is_answered_500_and_counted(service_module, client, valid_row, monkeypatch):
    # Stands in for a model that answers NaN on some input (a numerically broken release).
    estimator = service_module.FAST.runtime.estimator
    monkeypatch.setattr(estimator, "predict", lambda matrix: np.full(len(matrix), np.nan))
    version = service_module.VERSION
    before = _metric(client, names.METRIC_NON_FINITE, model_version=version, endpoint="/predict")
    response = client.post("/predict", json=valid_row)
    assert response.status_code == 500
    assert "nan" not in response.text.lower()
    after = _metric(client, names.METRIC_NON_FINITE, model_version=version, endpoint="/predict")
    assert after == before + 1


def test_batch_metrics_equal_row_by_row_metrics(service_module):
    """/predict_batch counts bins and prediction buckets in bulk; the series must be those of one row at
    a time (values on a bucket bound included)."""
    import copy

    from mlship.model import features
    from mlship.serving.fastpath import _bins
    from mlship.serving.metrics import HotMetrics

    schema = service_module.SCHEMA
    rng = np.random.default_rng(0)
    edges = schema.edge_rows()[list(features.RAW_FEATURES)].to_numpy(float)
    raw = edges[rng.integers(0, len(edges), 40)]
    predictions = rng.uniform(0, 400, 40)
    predictions[0] = schema.target.buckets[3]
    columns = [_bins(schema, name) for name in features.RAW_FEATURES]
    endpoints = ("/predict", "/predict_batch")
    bulk_metrics, rows_metrics = copy.copy(service_module.METRICS), copy.copy(service_module.METRICS)
    bulk_metrics.version, rows_metrics.version = "test-bulk", "test-rows"
    HotMetrics(bulk_metrics, columns, endpoints).observe_rows(raw, predictions, "/predict_batch")
    one_by_one = HotMetrics(rows_metrics, columns, endpoints)
    for row, prediction in zip(raw, predictions, strict=True):
        one_by_one.observe_row(row.tolist(), float(prediction), "/predict_batch")

    def series(version: str) -> dict[str, float]:
        out = {}
        for line in generate_latest(REGISTRY).decode().splitlines():
            if f'model_version="{version}"' in line and not line.startswith("#") and "_created" not in line:
                key, value = line.rsplit(" ", 1)
                out[key.replace(version, "")] = round(float(value), 6)
        return out

    bulk = series("test-bulk")
    assert bulk == series("test-rows")
    assert sum(v for k, v in bulk.items() if k.startswith("mlship_feature_bin_total")) == 40 * len(columns)


def test_a_model_that_raises_is_answered_500_at_once_and_counted(
    service_module, client, valid_row, monkeypatch
):
    """Review of issue 13: an exception other than the feature code's used to escape the fast path, so
    BentoML's timeout middleware held the request for `traffic.timeout` and no 5xx was counted."""
    estimator = service_module.FAST.runtime.estimator

    def broken(matrix):
        raise ValueError("a broken candidate model")

    monkeypatch.setattr(estimator, "predict", broken)
    for path, body in (("/predict", valid_row), ("/predict_batch", {"instances": [valid_row]})):
        response = client.post(path, json=body)
        assert response.status_code == 500
        assert response.json() == {"error": "the model failed on this input"}
        assert response.headers["x-request-id"]


def test_new_request_ids_are_not_guessable_from_each_other():
    from mlship.serving.middleware import request_id

    first, second = request_id(None), request_id(None)
    assert len(first) == len(second) == 32
    # 128 random bits each: no shared prefix beyond chance (a counter shared 28 of 32 digits)
    shared = next((i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b), 32)
    assert shared < 8
    assert request_id(b"client-id-1\n") != "client-id-1\n"  # a newline is not a well-formed id
