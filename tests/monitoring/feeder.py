"""Fixture exporter: the model server's own metric code fed with real diabetes rows, on /metrics.

Runs ``mlship.serving.metrics.ServiceMetrics`` (what bento/service.py exports) in its own process,
publishes the training reference of a model fitted on the training split, and observes held-out
rows at a steady rate, shifted with ``mlship.local.load.shift_rows`` when asked (as ``mlship load
--shift`` does). Gives a real Prometheus realistic ``mlship_*`` series without a BentoML server.

    python tests/monitoring/feeder.py --port 9555 --version a1 [--shift bmi=6] [--rows-per-second 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from prometheus_client import start_http_server
from sklearn.linear_model import LinearRegression

from mlship import names
from mlship.local.load import shift_rows
from mlship.model import data, features
from mlship.model.schema import Schema
from mlship.serving.metrics import ServiceMetrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--shift", action="append", default=[], help="FEATURE=DELTA")
    parser.add_argument("--rows-per-second", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    frame = data.load_frame()
    split = data.split(frame, seed=42, test_size=0.2)
    schema = Schema.derive(split.train, dataset=data.DATASET_NAME, data_hash=data.data_hash(frame))
    model = LinearRegression().fit(features.transform(split.x_train, "v1"), split.y_train)
    train_predictions = model.predict(features.transform(split.x_train, "v1"))
    buckets = schema.target.buckets
    reference = [float(np.mean(train_predictions <= le)) for le in buckets]

    metrics = ServiceMetrics(
        model_name="diabetes-regressor", version=args.version, feature_version="v1", schema_buckets=buckets
    )
    metrics.publish_reference(schema.features, reference, buckets)
    metrics.trained.labels(args.version).set(time.time() - 86_400)
    start_http_server(args.port, addr="127.0.0.1")

    shifts = {k: float(v) for k, v in (s.split("=", 1) for s in args.shift)}
    rows = split.x_test.to_dict(orient="records")
    rng = np.random.default_rng(args.seed)
    batch = max(1, round(args.rows_per_second / 10))
    while True:
        picked = [rows[i] for i in rng.integers(0, len(rows), batch)]
        if shifts:
            picked = shift_rows(picked, shifts, schema.features)
        served = pd.DataFrame.from_records(picked, columns=schema.names)
        predictions = model.predict(features.transform(served, "v1"))
        bins = {name: schema.bin_index(name, served[name].to_numpy()) for name in schema.names}
        metrics.observe(served, predictions, bins, names.ENDPOINT_PREDICT)
        metrics.skew_checks.labels(args.version).inc(len(picked))
        time.sleep(0.1)


if __name__ == "__main__":
    main()
