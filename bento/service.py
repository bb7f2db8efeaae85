"""mlship model server: a BentoML service for the registered model selected by ``MLSHIP_MODEL_TAG``.

The request model is generated from the feature schema stored with the model, so invalid input
(missing, extra, out of range, NaN/inf, wrong type) gets a 400 naming the field; the server never
answers 5xx for bad input. POST /predict and /predict_batch are answered by the lean ASGI app of
mlship/serving/fastpath.py (validation, model, metrics, logs, skew check, shadow mirroring), installed
in front of BentoML's routes; the API methods below declare the endpoints' schema (OpenAPI, /docs.json)
and serve in-process callers.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mlship import names
from mlship.feedback import serving as feedback
from mlship.feedback.endpoint import FeedbackEndpoint
from mlship.model import features
from mlship.model.schema import Schema
from mlship.serving.fastpath import PredictApp
from mlship.serving.logs import AccessLog, install_privacy_filters, json_logger
from mlship.serving.metrics import ServiceMetrics
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
STATIC_LOG_FIELDS = {"model_version": VERSION, "role": ROLE}
LOG = json_logger("mlship.service", STATIC_LOG_FIELDS)
METRICS = ServiceMetrics(
    model_name=_stored.tag.name,
    version=VERSION,
    feature_version=str(_stored.info.metadata.get("feature_version", features.LATEST)),
    schema_buckets=SCHEMA.target.buckets,
)
_offline_rmse = (_stored.info.metadata.get("metrics") or {}).get("rmse")
FEEDBACK = feedback.setup(VERSION, offline_rmse=float(_offline_rmse) if _offline_rmse is not None else None)


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


_shadow_file = target_file_from_env()
FAST = PredictApp(
    schema=SCHEMA,
    batch_model=PredictBatchRequest,
    metrics=METRICS,
    access_log=AccessLog(LOG, STATIC_LOG_FIELDS),
    role=ROLE,
    shadow=ShadowMirror(target_file=_shadow_file, metrics=METRICS) if _shadow_file else None,
    skew_check_every=SKEW_CHECK_EVERY,
)
# Other code registers here: FAST.on_prediction.append(hook) (see PredictionHook in fastpath.py).
on_prediction = FAST.on_prediction
on_prediction.extend(FEEDBACK.hooks)  # the outcome store's recorder: predictions to join outcomes to


@bentoml.service(
    name="mlship-model",
    traffic={"timeout": 10, "max_concurrency": 256},
    workers=int(os.environ.get("MLSHIP_WORKERS", "1")),
    # Latency buckets shared with the canary judge and the SLO rules (mlship/names.py).
    metrics={"enabled": True, "duration": {"buckets": list(names.LATENCY_BUCKETS)}},
    logging={"access": {"enabled": False}},
    # mlship configures no trace exporter: a span per prediction would be built and dropped (about 10 %
    # of a request's CPU in the profile, issue 13). Requests are correlated by X-Request-ID instead.
    tracing={"excluded_urls": [names.ENDPOINT_PREDICT, names.ENDPOINT_PREDICT_BATCH]},
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
        self._ready = False
        self.runtime.warm_up()
        FAST.load(self.runtime)
        self._ready = True
        self.log.info("model loaded", extra={"fields": {"model": str(info.tag)}})
        # Everything loaded so far lives as long as the server: keep it out of the collector's
        # generations, so a full collection under load walks only request garbage (p99, issue 13).
        gc.collect()
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self._ready

    def _score(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """In-process callers only: HTTP requests are answered by FAST before BentoML's routes."""
        return self.runtime.predict(self.runtime.frame(rows))

    @bentoml.api(route=names.ENDPOINT_PREDICT, input_spec=PatientFeatures, output_spec=Prediction)
    def predict(self, **row: Any) -> Prediction:
        """Predict disease progression for one patient."""
        value = float(self._score([row])[0])
        return Prediction(prediction=value, model_version=VERSION)

    @bentoml.api(
        route=names.ENDPOINT_PREDICT_BATCH, input_spec=PredictBatchRequest, output_spec=BatchPrediction
    )
    def predict_batch(self, instances: list[Any]) -> BatchPrediction:
        """Predict for up to MAX_BATCH_SIZE patients at once."""
        rows = [r.model_dump() for r in instances]
        values = self._score(rows)
        return BatchPrediction(predictions=[float(v) for v in values], model_version=VERSION)


# Innermost of the service's ASGI middlewares: BentoML's request metrics (canary and SLO rules),
# tracing and concurrency limit still run first. (@bentoml.service adds add_asgi_middleware to the
# class at run time, out of the type checker's sight.)
ModelService.add_asgi_middleware(FAST.wrap)  # type: ignore[attr-defined]
# POST /feedback: outcomes joined to the predictions the on_prediction recorder stored.
ModelService.add_asgi_middleware(FeedbackEndpoint, **FEEDBACK.endpoint_options)  # type: ignore[attr-defined]
