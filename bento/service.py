"""mlship model server: a BentoML service for the registered model selected by ``MLSHIP_MODEL_TAG``.

The request model is generated from the feature schema stored with the model, so invalid input
(missing, extra, out of range, NaN/inf, wrong type) gets a 400 naming the field; the server never
answers 5xx for bad input. Metrics, logs and shadow mirroring live in ``mlship.serving``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from mlship import names
from mlship.feedback import serving as feedback
from mlship.feedback.endpoint import FeedbackEndpoint
from mlship.model import features
from mlship.model.schema import Schema
from mlship.serving.logs import install_privacy_filters, json_logger, request_id
from mlship.serving.metrics import ServiceMetrics
from mlship.serving.middleware import RequestGuard
from mlship.serving.runtime import SCHEMA_FILE, ModelRuntime
from mlship.serving.shadow import ShadowMirror, target_file_from_env

MODEL_NAME = os.environ.get("MLSHIP_MODEL_NAME", "diabetes-regressor")
MODEL_TAG = os.environ.get("MLSHIP_MODEL_TAG") or f"{MODEL_NAME}:latest"
ROLE = os.environ.get("MLSHIP_ROLE", "standalone")
SKEW_CHECK_EVERY = int(os.environ.get("MLSHIP_SKEW_CHECK_EVERY", "20"))

model_ref = bentoml.models.BentoModel(MODEL_TAG)
_stored = model_ref.stored
if _stored is None:
    raise RuntimeError(f"model {MODEL_TAG} is not in the model store; run `mlship model train` first")
SCHEMA = Schema.from_json(Path(_stored.path_of(SCHEMA_FILE)).read_text(encoding="utf-8"))
VERSION = _stored.tag.version

PatientFeatures = SCHEMA.request_model()
install_privacy_filters()
LOG = json_logger("mlship.service", {"model_version": VERSION, "role": ROLE})
METRICS = ServiceMetrics(
    model_name=_stored.tag.name,
    version=VERSION,
    feature_version=str(_stored.info.metadata.get("feature_version", features.LATEST)),
    schema_buckets=SCHEMA.target.buckets,
)
_offline_rmse = (_stored.info.metadata.get("metrics") or {}).get("rmse")
FEEDBACK = feedback.setup(VERSION, offline_rmse=float(_offline_rmse) if _offline_rmse is not None else None)
# on_prediction(request_id, version, role, rows, predictions), called after every scored request.
ON_PREDICTION = [*FEEDBACK.hooks]


class PredictBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    instances: list[PatientFeatures] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=names.MAX_BATCH_SIZE, description="rows to score"
    )


class Prediction(BaseModel):
    prediction: float = Field(description="predicted disease progression one year after baseline")
    model_version: str


class BatchPrediction(BaseModel):
    predictions: list[float]
    model_version: str


@bentoml.service(
    name="mlship-model",
    traffic={"timeout": 10, "max_concurrency": 256},
    workers=int(os.environ.get("MLSHIP_WORKERS", "1")),
    # Latency buckets shared with the canary judge and the SLO rules (mlship/names.py).
    metrics={"enabled": True, "duration": {"buckets": list(names.LATENCY_BUCKETS)}},
    logging={"access": {"enabled": False}},
)
class ModelService:
    model = model_ref

    def __init__(self) -> None:
        self.log = LOG
        info = self.model.info
        self.runtime = ModelRuntime.from_directory(
            Path(self.model.path), name=info.tag.name, version=VERSION, metadata=dict(info.metadata)
        )
        self.metrics = METRICS
        self.metrics.publish_reference(
            SCHEMA.features, list(info.metadata.get("prediction_reference_share", [])), SCHEMA.target.buckets
        )
        self.metrics.trained.labels(VERSION).set(self.runtime.trained_at)
        if self.runtime.max_age_days is not None:
            self.metrics.max_age.labels(VERSION).set(self.runtime.max_age_days * 86400)
        self._counter = itertools.count()
        self._ready = False
        self.runtime.warm_up()
        self._ready = True
        self.log.info("model loaded", extra={"fields": {"model": str(info.tag)}})

    def __is_ready__(self) -> bool:
        return self._ready

    def _score(self, rows: list[dict[str, Any]], endpoint: str) -> np.ndarray:
        frame = self.runtime.frame(rows)
        predictions = self.runtime.predict(frame)
        bins = {f.name: SCHEMA.bin_index(f.name, frame[f.name].to_numpy()) for f in SCHEMA.features}
        self.metrics.observe(frame, predictions, bins, endpoint)
        for hook in ON_PREDICTION:
            hook(request_id.get(), VERSION, ROLE, rows, predictions)
        if next(self._counter) % SKEW_CHECK_EVERY == 0:
            self._skew_check(rows, frame)
        return predictions

    def _skew_check(self, rows: list[dict[str, Any]], online: pd.DataFrame) -> None:
        """Recompute the features of served rows through the offline (training) layout and compare."""
        offline = pd.DataFrame(rows).astype({f.name: "float64" for f in SCHEMA.features})
        offline = offline.astype({"sex": "int64"}) if "sex" in offline else offline
        version = self.runtime.feature_version
        a = features.transform(online, version)
        b = features.transform(offline.loc[:, SCHEMA.names], version)
        self.metrics.skew_checks.labels(VERSION).inc(len(rows))
        mismatched = int((~np.isclose(a, b, rtol=0, atol=1e-9)).any(axis=1).sum())
        if mismatched:
            self.metrics.skew_mismatches.labels(VERSION).inc(mismatched)
            self.log.warning("training/serving skew", extra={"fields": {"rows": mismatched}})

    @bentoml.api(route=names.ENDPOINT_PREDICT, input_spec=PatientFeatures, output_spec=Prediction)
    def predict(self, **row: Any) -> Prediction:
        """Predict disease progression for one patient."""
        value = float(self._score([row], names.ENDPOINT_PREDICT)[0])
        return Prediction(prediction=value, model_version=VERSION)

    @bentoml.api(
        route=names.ENDPOINT_PREDICT_BATCH, input_spec=PredictBatchRequest, output_spec=BatchPrediction
    )
    def predict_batch(self, instances: list[Any]) -> BatchPrediction:
        """Predict for up to MAX_BATCH_SIZE patients at once."""
        rows = [r.model_dump() for r in instances]
        values = self._score(rows, names.ENDPOINT_PREDICT_BATCH)
        return BatchPrediction(predictions=[float(v) for v in values], model_version=VERSION)


# Added first = outermost: the guard buffers the body (size limit) that the shadow mirror re-sends.
# (@bentoml.service adds add_asgi_middleware to the class at run time, out of the type checker's sight.)
ModelService.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestGuard,
    max_body_bytes=names.MAX_REQUEST_BYTES,
    on_reject=METRICS.reject,
    access_log=LOG,
    fields=frozenset([*SCHEMA.names, "instances"]),
)
ModelService.add_asgi_middleware(  # type: ignore[attr-defined]
    ShadowMirror, target_file=target_file_from_env(), metrics=METRICS
)
ModelService.add_asgi_middleware(FeedbackEndpoint, **FEEDBACK.endpoint_options)  # type: ignore[attr-defined]
