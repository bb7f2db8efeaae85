"""Training and serving compute the same features (ML Test Score, Monitor 3; Data 7; Infra 3 in process).

The real BentoML service (in process) answers held-out patients with exactly the predictions the registered
model makes offline through the training feature code; its live skew check recomputes served rows through
the offline path and counts mismatches, and it does count them when serving-side input handling drifts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prometheus_client import REGISTRY, generate_latest

from mlship import names
from mlship.model import features
from mlship.serving.runtime import ModelRuntime


def metric(name: str, **labels: str) -> float:
    """A counter of the in-process service: there is no BentoML worker arbiter to serve /metrics in
    process, so read the default registry its metrics live in (as tests/service does)."""
    total = 0.0
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rows_of(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (int(v) if k == "sex" else float(v)) for k, v in row.items()} for row in frame.to_dict("records")
    ]


def test_served_predictions_equal_the_offline_ones_for_every_heldout_patient(served, models, heldout):
    _, client = served
    rows = heldout[0]
    response = client.post(names.ENDPOINT_PREDICT_BATCH, json={"instances": rows_of(rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    record = models["baseline"]
    assert body["model_version"] == record.version and record.blessed
    offline = record.load_estimator().predict(features.transform(rows, record.metadata["feature_version"]))
    assert np.array_equal(np.asarray(body["predictions"]), offline)


def test_the_live_skew_check_runs_on_served_rows_and_finds_no_mismatch(served, models, heldout, monkeypatch):
    module, client = served
    version = models["baseline"].version
    monkeypatch.setattr(module.FAST, "skew_check_every", 1)
    monkeypatch.setattr(module.FAST, "skew_batch_rows", 1)
    module.FAST.flush_skew_check()  # rows sampled by earlier tests
    checks = metric(names.METRIC_SKEW_CHECKS, model_version=version)
    mismatches = metric(names.METRIC_SKEW_MISMATCHES, model_version=version)
    rows = rows_of(heldout[0].iloc[:25])
    for row in rows[:5]:
        assert client.post(names.ENDPOINT_PREDICT, json=row).status_code == 200
    assert client.post(names.ENDPOINT_PREDICT_BATCH, json={"instances": rows[5:]}).status_code == 200
    assert metric(names.METRIC_SKEW_CHECKS, model_version=version) == checks + 25
    assert metric(names.METRIC_SKEW_MISMATCHES, model_version=version) == mismatches


def test_serving_side_input_handling_that_drifts_is_counted_as_skew(served, models, heldout, monkeypatch):
    """A serving path that rounds inputs to float32 (a classic skew bug) no longer matches training."""
    module, client = served
    version = models["baseline"].version
    monkeypatch.setattr(module.FAST, "skew_check_every", 1)
    monkeypatch.setattr(module.FAST, "skew_batch_rows", 1)
    original = ModelRuntime.raw_matrix
    sex = features.RAW_FEATURES.index("sex")

    def float32_matrix(self, rows):
        matrix = original(self, rows)
        rounded = matrix.astype(np.float32).astype(np.float64)
        rounded[:, sex] = matrix[:, sex]
        return rounded

    monkeypatch.setattr(ModelRuntime, "raw_matrix", float32_matrix)
    before = metric(names.METRIC_SKEW_MISMATCHES, model_version=version)
    rows = rows_of(heldout[0].iloc[:10])
    assert client.post(names.ENDPOINT_PREDICT_BATCH, json={"instances": rows}).status_code == 200
    assert metric(names.METRIC_SKEW_MISMATCHES, model_version=version) >= before + 9


def test_at_low_traffic_the_skew_check_runs_once_its_oldest_row_waited(served, models, heldout, monkeypatch):
    """At 2 req/s a full batch of sampled rows takes minutes; the check must not wait for it, or the skew
    alert has nothing to judge while a new version takes its first traffic."""
    module, client = served
    version = models["baseline"].version
    monkeypatch.setattr(module.FAST, "skew_check_every", 1)
    module.FAST.flush_skew_check()  # rows sampled by earlier tests
    clock = [1000.0]
    monkeypatch.setattr(module.FAST, "clock", lambda: clock[0])
    checks = metric(names.METRIC_SKEW_CHECKS, model_version=version)
    rows = rows_of(heldout[0].iloc[:3])
    for row in rows[:2]:  # two rows, far below the default batch: nothing checked yet
        assert client.post(names.ENDPOINT_PREDICT, json=row).status_code == 200
    assert metric(names.METRIC_SKEW_CHECKS, model_version=version) == checks
    clock[0] += module.FAST.skew_max_wait_s  # the oldest waiting row is now old enough
    assert client.post(names.ENDPOINT_PREDICT, json=rows[2]).status_code == 200
    assert metric(names.METRIC_SKEW_CHECKS, model_version=version) == checks + 3
